"""Notification delivery on loopback: event-to-receiver latency, fan-out, isolation from a
hanging channel, throughput. Real SQLite store, real HTTP receivers, real worker."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from control.channels import service as channel_store
from control.core.db import open_db
from control.incidents.event_bus import IncidentEvent, IncidentEvents
from control.incidents.schemas import Incident, NodeRef
from control.notify.service import NotificationService, NotifySettings
from control.workspace.service import create_workspace
from lab import notify_receivers as rx
from lab.notify_channels import RECEIVERS, channel_config


def _incident(n: int) -> Incident:
    return Incident(
        uuid=f"00000000-0000-4000-8000-{n:012d}",
        node=NodeRef(uuid="n-1", name="edge-fra-1"),
        family="udp_flood",
        subtype=None,
        severity="critical",
        status="active",
        started_at="2026-01-01T00:00:00Z",
        ended_at=None,
        peak_pps=2.45e6,
        peak_bps=1.2e9,
        duration_sec=12,
        source_count=0,
        protocols={},
        top_sources=[],
        geo_origin=[],
        summary="Critical udp flood against edge-fra-1.",
        mitigation_rules=[],
        mitigated_at=None,
        pcap=None,
    )


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _wait(receiver: rx.Receiver, count: int) -> None:
    await receiver.wait_for(count, within=60)


async def _run() -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = await open_db(Path(tmp) / "bench.db")
        events = IncidentEvents()
        ws, _ = await create_workspace(db, "bench", "pro")
        settings = NotifySettings(http_timeout_sec=2.0, attempt_timeout_sec=3.0)
        service = NotificationService(db, events, settings)
        await service.start()
        made: list[rx.Receiver] = []
        try:
            # 1. latency, one channel, events one at a time
            hook = rx.webhook()
            made.append(hook)
            await channel_store.create_channel(db, ws, "hook", "webhook", channel_config(hook))
            latencies = []
            for n in range(100):
                t0 = time.time()
                await events.publish(IncidentEvent("opened", ws, f"lat-{n}", _incident(n)))
                await _wait(hook, n + 1)
                latencies.append((hook.requests[-1].at - t0) * 1000)
            rows.append(("event -> webhook receiver p50", f"{statistics.median(latencies):.1f} ms"))
            rows.append(("event -> webhook receiver p95", f"{_pct(latencies, 0.95):.1f} ms"))

            # 2. fan-out to one channel of every HTTP type
            fan = {name: make() for name, make in RECEIVERS.items()}
            made.extend(fan.values())
            for name, receiver in fan.items():
                await channel_store.create_channel(
                    db, ws, f"fan-{name}", name, channel_config(receiver)
                )
            t0 = time.time()
            await events.publish(IncidentEvent("opened", ws, "fan", _incident(10_000)))
            for receiver in fan.values():
                await _wait(receiver, 1)
            last = max(r.requests[0].at for r in fan.values())
            rows.append(
                (
                    f"fan-out to {len(fan) + 1} HTTP channels, all received",
                    f"{(last - t0) * 1000:.1f} ms",
                )
            )

            # 3. the same with one channel hanging (answers never)
            stuck = rx.slack().then(*[rx.HANG] * 5)
            made.append(stuck)
            await channel_store.create_channel(db, ws, "stuck", "slack", channel_config(stuck))
            t0 = time.time()
            await events.publish(IncidentEvent("opened", ws, "iso", _incident(20_000)))
            await _wait(hook, 102)
            rows.append(
                (
                    "webhook latency while a channel hangs",
                    f"{(hook.requests[-1].at - t0) * 1000:.1f} ms",
                )
            )

            # 4. throughput: 300 events, 13 channels -> deliveries per second
            count = 100
            before = sum(len(r.requests) for r in made)
            t0 = time.time()
            for n in range(count):
                await events.publish(IncidentEvent("opened", ws, f"tp-{n}", _incident(30_000 + n)))
            await _wait(hook, 102 + count)
            for receiver in fan.values():
                await _wait(receiver, 2 + count)
            elapsed = time.time() - t0
            delivered = sum(len(r.requests) for r in made if r is not stuck) - before + 1
            rows.append(
                (
                    f"throughput ({count} events x 12 live channels)",
                    f"{delivered / elapsed:.0f} deliveries/s",
                )
            )
        finally:
            await service.stop()
            for receiver in made:
                receiver.close()
            await db.close()
    return rows


def main() -> None:
    rows = asyncio.run(_run())
    width = max(len(name) for name, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
