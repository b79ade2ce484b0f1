"""Metric points from agents: buffered, written in batches, rolled up, pruned.

POST metrics validates, appends to an in-memory buffer and waits for the transaction that
writes it (group commit): the single background writer takes everything buffered at once,
so the posts that arrive while one transaction runs share the next one. The reply is
therefore sent only once its points are on disk (a crash loses no acknowledged point),
and one process still takes thousands of posts a second, because each transaction
carries many posts. Idempotent: a point is keyed by (node, second), so a replayed batch changes
nothing. The node's live columns (last_pps, last_bps, baseline_*) follow the newest
point only, so replaying an outage's backlog does not drag them into the past.

Roll-ups: every (node, minute) that got points is recomputed from the raw points of
that minute every `rollup_interval_s`; a recomputation never replaces a roll-up built
from more samples (raw points of a late-replayed minute may already be pruned).
Retention: raw points `raw_retention_s` (1 h), roll-ups `rollup_retention_s` (90 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from dataclasses import dataclass

import aiosqlite

from control.agentapi.settings import AgentApiSettings
from control.core.db import transaction
from ftcontract.agent_api import MetricPoint

log = logging.getLogger("ftcontrol.agentapi")

PROTOCOL_CLASSES = ("tcp", "udp", "icmp", "other")

_INSERT_RAW = """
INSERT INTO node_metrics_raw (node_id, ts, pps, bps, dropped_pps, dropped_bps, tcp_pps,
    udp_pps, icmp_pps, other_pps, fragment_pps, syn_pps, attack, baseline_avg_pps,
    baseline_p95_pps, baseline_p99_pps)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (node_id, ts) DO NOTHING
"""
# Live columns follow a point only if it is newer than the newest one applied so far.
_UPDATE_NODE = """
UPDATE nodes SET last_pps = :pps, last_bps = :bps,
    baseline_avg_pps = COALESCE(:avg, baseline_avg_pps),
    baseline_p95_pps = COALESCE(:p95, baseline_p95_pps)
WHERE id = :node AND NOT EXISTS (
    SELECT 1 FROM agent_state s WHERE s.node_id = :node AND s.last_metric_ts >= :ts)
"""
_UPSERT_STATE = """
INSERT INTO agent_state (node_id, last_metric_ts, last_dropped_pps, last_protocols,
    baseline_p99_pps)
VALUES (:node, :ts, :dropped, :protocols, :p99)
ON CONFLICT (node_id) DO UPDATE SET
    last_metric_ts = excluded.last_metric_ts,
    last_dropped_pps = excluded.last_dropped_pps,
    last_protocols = excluded.last_protocols,
    baseline_p99_pps = COALESCE(excluded.baseline_p99_pps, agent_state.baseline_p99_pps)
WHERE agent_state.last_metric_ts IS NULL OR agent_state.last_metric_ts < excluded.last_metric_ts
"""
_ROLLUP = """
INSERT INTO node_metrics_minute (node_id, minute, samples, pps_avg, pps_max, bps_avg,
    bps_max, dropped_pps_avg, tcp_pps_avg, udp_pps_avg, icmp_pps_avg, other_pps_avg,
    fragment_pps_avg, syn_pps_avg, attack_samples, baseline_p95_pps)
SELECT node_id, :minute, count(*), avg(pps), max(pps), avg(bps), max(bps),
    avg(dropped_pps), avg(tcp_pps), avg(udp_pps), avg(icmp_pps), avg(other_pps),
    avg(fragment_pps), avg(syn_pps), sum(attack), max(baseline_p95_pps)
FROM node_metrics_raw
WHERE node_id = :node AND ts >= :minute AND ts < :minute + 60
GROUP BY node_id
ON CONFLICT (node_id, minute) DO UPDATE SET
    samples = excluded.samples, pps_avg = excluded.pps_avg, pps_max = excluded.pps_max,
    bps_avg = excluded.bps_avg, bps_max = excluded.bps_max,
    dropped_pps_avg = excluded.dropped_pps_avg, tcp_pps_avg = excluded.tcp_pps_avg,
    udp_pps_avg = excluded.udp_pps_avg, icmp_pps_avg = excluded.icmp_pps_avg,
    other_pps_avg = excluded.other_pps_avg, fragment_pps_avg = excluded.fragment_pps_avg,
    syn_pps_avg = excluded.syn_pps_avg, attack_samples = excluded.attack_samples,
    baseline_p95_pps = excluded.baseline_p95_pps
WHERE excluded.samples >= node_metrics_minute.samples
"""
# The baseline's protocol mix: the last hour's roll-ups of minutes with no attack.
_BASELINE_MIX = """
SELECT sum(tcp_pps_avg), sum(udp_pps_avg), sum(icmp_pps_avg), sum(other_pps_avg)
FROM node_metrics_minute WHERE node_id = ? AND attack_samples = 0 AND minute >= ?
"""


# Longest a post waits for the write of its points before it is told to retry (503).
COMMIT_WAIT_S = 10.0


def _settle(waiters: list[asyncio.Future[None]], error: Exception | None = None) -> None:
    for waiter in waiters:
        if waiter.done():
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
            waiter.exception()  # retrieved: a post that gave up waiting logs no warning


class Overloaded(Exception):
    """The write buffer is full; the agent should retry (it keeps the points spooled)."""


@dataclass(frozen=True, slots=True)
class PruneResult:
    raw_deleted: int
    rollups_deleted: int


def protocol_shares(pps_by_class: dict[str, float]) -> dict[str, float]:
    """Percent of packets per protocol class (tcp, udp, icmp, other); {} when no traffic."""
    values = {k: max(0.0, float(pps_by_class.get(k, 0.0))) for k in PROTOCOL_CLASSES}
    total = sum(values.values())
    if total <= 0:
        return {}
    return {k: round(100.0 * v / total, 1) for k, v in values.items()}


def _row(node_id: int, p: MetricPoint) -> tuple[object, ...]:
    pr = p.protocols
    return (
        node_id,
        int(p.ts),
        p.pps,
        p.bps,
        p.dropped_pps,
        p.dropped_bps,
        pr.get("tcp", 0.0),
        pr.get("udp", 0.0),
        pr.get("icmp", 0.0),
        pr.get("other", 0.0),
        pr.get("fragment", 0.0),
        p.tcp_flags.get("syn", 0.0),
        int(p.attack),
        p.baseline_avg_pps,
        p.baseline_p95_pps,
        p.baseline_p99_pps,
    )


class MetricsStore:
    def __init__(self, db: aiosqlite.Connection, settings: AgentApiSettings) -> None:
        self.db = db
        self.settings = settings
        self._buffer: list[tuple[int, MetricPoint]] = []
        self._dirty: set[tuple[int, int]] = set()
        self._flush_lock = asyncio.Lock()
        # Posts waiting for the transaction that writes their points, and the writer's bell.
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self.points_accepted = 0
        self.points_written = 0

    # ---- request path ------------------------------------------------------------------

    def accept(self, node_id: int, points: list[MetricPoint]) -> None:
        if len(self._buffer) + len(points) > self.settings.max_buffered_points:
            raise Overloaded("metrics write buffer full; retry later")
        self._buffer.extend((node_id, p) for p in points)
        self.points_accepted += len(points)

    async def commit(self, node_id: int, points: list[MetricPoint]) -> None:
        """Accept the points and return once a transaction has written them.

        Raises Overloaded when the buffer is full, or when the write failed or took
        longer than COMMIT_WAIT_S (the points stay buffered; a resend is idempotent)."""
        self.accept(node_id, points)
        done = asyncio.get_running_loop().create_future()
        self._waiters.append(done)
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(done), COMMIT_WAIT_S)
        except TimeoutError:
            raise Overloaded("metrics write is slow; retry later") from None

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    # ---- background work ---------------------------------------------------------------

    async def flush(self) -> int:
        """Write every buffered point; returns how many."""
        async with self._flush_lock:
            batch, self._buffer = self._buffer, []
            waiters, self._waiters = self._waiters, []
            if not batch:
                _settle(waiters)
                return 0
            newest: dict[int, MetricPoint] = {}
            for node_id, p in batch:
                cur = newest.get(node_id)
                if cur is None or p.ts > cur.ts:
                    newest[node_id] = p
            try:
                async with transaction(self.db) as db:
                    await db.executemany(_INSERT_RAW, [_row(n, p) for n, p in batch])
                    await db.executemany(
                        _UPDATE_NODE,
                        [
                            {
                                "node": n,
                                "ts": int(p.ts),
                                "pps": p.pps,
                                "bps": p.bps,
                                "avg": p.baseline_avg_pps,
                                "p95": p.baseline_p95_pps,
                            }
                            for n, p in newest.items()
                        ],
                    )
                    await db.executemany(
                        _UPSERT_STATE,
                        [
                            {
                                "node": n,
                                "ts": int(p.ts),
                                "dropped": p.dropped_pps,
                                "protocols": json.dumps(p.protocols),
                                "p99": p.baseline_p99_pps,
                            }
                            for n, p in newest.items()
                        ],
                    )
            except sqlite3.IntegrityError:
                # Points of a node removed from the store for good (its workspace deleted):
                # no retry can write them, and keeping them would block every later batch.
                rows = await self.db.execute_fetchall("SELECT id FROM nodes")
                live = {int(r[0]) for r in rows}
                kept = [(n, p) for n, p in batch if n in live]
                log.error("dropped %d metric points of removed nodes", len(batch) - len(kept))
                if len(kept) < len(batch):
                    self._buffer[:0] = kept
                # The posts wait for the next transaction, which writes what is left.
                self._waiters[:0] = waiters
                self._wake.set()
                return 0
            except Exception as exc:
                # Put the batch back in front: nothing accepted is lost to a failed write.
                self._buffer[:0] = batch
                _settle(waiters, Overloaded(f"metrics write failed ({type(exc).__name__})"))
                raise
            except BaseException:  # cancelled at shutdown: close() writes them
                self._buffer[:0] = batch
                self._waiters[:0] = waiters
                raise
            self._dirty.update((n, int(p.ts) // 60 * 60) for n, p in batch)
            self.points_written += len(batch)
            _settle(waiters)
            return len(batch)

    async def rollup(self) -> int:
        """Recompute the roll-ups of every minute that got points; returns how many."""
        dirty, self._dirty = self._dirty, set()
        if not dirty:
            return 0
        since = int(time.time()) - 3600
        nodes = sorted({n for n, _ in dirty})
        async with transaction(self.db) as db:
            await db.executemany(_ROLLUP, [{"node": n, "minute": m} for n, m in sorted(dirty)])
            for node_id in nodes:
                rows = await db.execute_fetchall(_BASELINE_MIX, (node_id, since))
                sums = next(iter(rows), None)
                if sums is None or sums[0] is None:
                    continue
                shares = protocol_shares(dict(zip(PROTOCOL_CLASSES, sums, strict=True)))
                if shares:
                    await db.execute(
                        "UPDATE nodes SET baseline_protocols = ? WHERE id = ?",
                        (json.dumps(shares), node_id),
                    )
        return len(dirty)

    async def prune(self, now: float | None = None) -> PruneResult:
        """Delete raw points and roll-ups past their retention (roll-ups first updated)."""
        await self.flush()
        await self.rollup()
        now = time.time() if now is None else now
        async with transaction(self.db) as db:
            raw = await db.execute(
                "DELETE FROM node_metrics_raw WHERE ts < ?",
                (int(now - self.settings.raw_retention_s),),
            )
            rolled = await db.execute(
                "DELETE FROM node_metrics_minute WHERE minute < ?",
                (int(now - self.settings.rollup_retention_s),),
            )
        return PruneResult(raw.rowcount, rolled.rowcount)

    async def run(self) -> None:
        """Flush, roll up and prune forever (cancelled at shutdown, then `close`)."""
        s = self.settings
        next_rollup = time.monotonic() + s.rollup_interval_s
        next_prune = time.monotonic() + s.prune_interval_s
        while True:
            # Wake for posts at once (group commit), else every flush_interval_s.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), s.flush_interval_s)
            self._wake.clear()
            try:
                await self.flush()
                now = time.monotonic()
                if now >= next_prune:
                    next_prune = now + s.prune_interval_s
                    result = await self.prune()
                    if result.raw_deleted or result.rollups_deleted:
                        log.info(
                            "retention: deleted %d raw points, %d roll-ups",
                            result.raw_deleted,
                            result.rollups_deleted,
                        )
                elif now >= next_rollup:
                    next_rollup = now + s.rollup_interval_s
                    await self.rollup()
            except Exception:  # a locked or full disk: keep the buffer, try again
                log.exception("metrics write failed; retrying")

    async def close(self) -> None:
        await self.flush()
        await self.rollup()
