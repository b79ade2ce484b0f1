"""Local HTTP on 127.0.0.1:9477: Prometheus `/metrics` and JSON `/health`.

Both are formatted from the loop's last `views.Snapshot` and nothing else: the HTTP
thread reads no map, takes no lock of the loop and calls nothing of it but `snapshot()`.
Counters are the kernel's as the loop last read them (every window); rule counters as of
its last read (once a second, and after each change).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ftagent.datapath import Counters, Rule
from ftagent.detect.rates import DROP_VERDICTS
from ftagent.link.link import LinkState
from ftagent.local.views import Health, MetricsView, Snapshot

log = logging.getLogger("ftagent.http")
CONTENT_TYPE_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"

SnapshotFn = Callable[[], Snapshot]


def _labelled(name: str, text: str, label: str, values: dict[str, int]) -> Metric:
    """One counter family with a sample per key of `values`."""
    family = CounterMetricFamily(name, text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


class AgentCollector(Collector):
    def __init__(self, snapshot: SnapshotFn) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        h, g = snap.health, snap.metrics
        if g.counters is not None:
            yield from _counters(g.counters)
        for metric, quantiles, current in (
            ("pps", g.baseline.get("pps"), g.current_pps),
            ("bps", g.baseline.get("bps"), g.current_bps),
        ):
            bl = GaugeMetricFamily(
                f"ftagent_baseline_{metric}", f"Learned baseline of {metric}", labels=["quantile"]
            )
            if quantiles is not None:
                bl.add_metric(["avg"], quantiles.avg)
                bl.add_metric(["0.95"], quantiles.p95)
                bl.add_metric(["0.99"], quantiles.p99)
            yield bl
            th = GaugeMetricFamily(f"ftagent_threshold_{metric}", f"Detection threshold ({metric})")
            th.add_metric([], g.thresholds.get(metric, 0.0))
            yield th
            cur = GaugeMetricFamily(f"ftagent_current_{metric}", f"Last window's {metric}")
            cur.add_metric([], current or 0.0)
            yield cur
        for name, text, value in (
            ("ftagent_baseline_ready", "1 when learned thresholds apply", h.baseline_ready),
            ("ftagent_attack_active", "1 while an incident is active", h.attack_active),
            ("ftagent_rules_active", "Drop rules in the kernel", g.rules_in_kernel),
            ("ftagent_sample_one_in", "Kernel sampling ratio (1 in N)", g.sample_one_in),
            ("ftagent_uptime_seconds", "Seconds since the agent started", snap.uptime_s()),
        ):
            gm = GaugeMetricFamily(name, text)
            gm.add_metric([], float(value))
            yield gm
        yield _labelled("ftagent_incidents", "Incidents opened", "family", g.incidents)
        yield from _link(g.link)
        yield from _rule_counters(g.rules)
        yield _xdp_attached(h, g)


def _counters(c: Counters) -> Iterator[Metric]:
    yield _labelled("ftagent_packets", "Packets received, by class", "proto", c.packets)
    yield _labelled("ftagent_bytes", "Bytes received, by class", "proto", c.bytes)
    yield _labelled("ftagent_tcp_flags_packets", "TCP packets by flags", "flags", c.tcp_flags)
    yield _labelled(
        "ftagent_udp_source_port_packets",
        "UDP packets by source port",
        "port",
        c.udp_src_port_packets,
    )
    yield _labelled("ftagent_packet_size_packets", "Packets by size", "size", c.sizes)
    dp = CounterMetricFamily(
        "ftagent_dropped_packets", "Packets dropped in XDP, by reason", labels=["reason"]
    )
    db = CounterMetricFamily(
        "ftagent_dropped_bytes", "Bytes dropped in XDP, by reason", labels=["reason"]
    )
    for reason in DROP_VERDICTS:
        dp.add_metric([reason], c.verdicts.get(reason, 0))
        db.add_metric([reason], c.verdict_bytes.get(reason, 0))
    yield dp
    yield db
    yield _labelled("ftagent_verdict_packets", "Packets by verdict", "verdict", c.verdicts)


def _rule_counters(rules: tuple[Rule, ...]) -> Iterator[Metric]:
    """Per rule (label: its description, as `ftagent rules` shows it): what it dropped and
    what it spared (passed because a socket of the node wanted it). Bounded by the rule
    tables' sizes."""
    for what, text in (("dropped", "dropped by the rule"), ("spared", "spared by the rule")):
        for unit in ("packets", "bytes"):
            family = CounterMetricFamily(
                f"ftagent_rule_{what}_{unit}", f"{unit.capitalize()} {text}", labels=["rule"]
            )
            for r in rules:
                family.add_metric([r.spec.describe()], getattr(r, f"{what}_{unit}"))
            yield family


def _link(state: LinkState) -> Iterator[Metric]:
    """The monitored link's receive losses (as of the loop's last second) and verdict."""
    lost = GaugeMetricFamily(
        "ftagent_link_rx_lost_pps",
        "Packets per second the interface lost before XDP (rx dropped + missed + fifo)",
    )
    lost.add_metric([], state.rx_lost_pps)
    yield lost
    saturated = GaugeMetricFamily(
        "ftagent_link_saturated", "1 while the agent judges the monitored link saturated"
    )
    saturated.add_metric([], float(state.saturated))
    yield saturated
    if state.losses is not None:
        yield _labelled(
            "ftagent_link_rx_lost_packets",
            "Packets the interface lost before XDP, by counter (as of the last second)",
            "counter",
            {
                "rx_dropped": state.losses.dropped,
                "rx_missed_errors": state.losses.missed,
                "rx_fifo_errors": state.losses.fifo,
            },
        )


def _xdp_attached(h: Health, g: MetricsView) -> Metric:
    """1 while the kernel still runs OUR program on the interface (the loop asks once a
    second: another tool may have replaced or removed it); `mode` says native or generic."""
    family = GaugeMetricFamily(
        "ftagent_xdp_attached",
        "1 while the agent's XDP program is attached to the interface",
        labels=["interface", "mode"],
    )
    family.add_metric([h.interface, h.xdp_mode], float(g.xdp_attached))
    return family


def _handler(registry: CollectorRegistry, snapshot: SnapshotFn) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ftagent"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    body = generate_latest(registry)
                    ctype = CONTENT_TYPE_PROMETHEUS
                elif path == "/health":
                    body = msgspec.json.encode(snapshot().health_now())
                    ctype = "application/json"
                else:
                    self.send_error(404, "not found (try /metrics or /health)")
                    return
            except Exception as exc:  # a failed scrape is a 500, never a dead server
                log.exception("scrape of %s failed", path)
                self.send_error(500, f"scrape failed: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    return Handler


class LocalHttp:
    def __init__(self, snapshot: SnapshotFn, host: str, port: int) -> None:
        """`snapshot`: the loop's last snapshot (`Agent.snapshot`), called per request."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(snapshot))
        self.server = ThreadingHTTPServer((host, port), _handler(self.registry, snapshot))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="ftagent-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
