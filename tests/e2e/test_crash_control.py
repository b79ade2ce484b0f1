"""Crash safety of the control plane: `kill -9` of `ftcontrol serve` during a stream of
agent posts. After each kill, every write that was acknowledged (2xx) is in the store,
`PRAGMA integrity_check` is ok, and the restarted server serves it all.

Several agents post concurrently (metric batches, incident opens and updates), so the
kill lands with transactions in flight. Three rounds on the same database.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.api.served import Node, Served, served_control

WRITERS = 4
ROUNDS = 3
ACKED_PER_ROUND = 400  # kill once this many writes were acknowledged in the round


@dataclass
class Acked:
    """What the server said 2xx to."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    points: set[tuple[str, int]] = field(default_factory=set)  # (node uuid, ts)
    incidents: set[str] = field(default_factory=set)
    seqs: dict[str, int] = field(default_factory=dict)  # incident -> highest acked seq
    count: int = 0

    def add(self, kind: str, *key: object) -> None:
        with self.lock:
            self.count += 1
            if kind == "points":
                node, stamps = key
                assert isinstance(node, str) and isinstance(stamps, list)
                self.points.update((node, ts) for ts in stamps)
            elif kind == "incident":
                self.incidents.add(str(key[0]))
            else:
                inc, seq = str(key[0]), int(str(key[1]))
                self.seqs[inc] = max(seq, self.seqs.get(inc, 0))


class Writer(threading.Thread):
    def __init__(self, srv: Served, node: Node, acked: Acked, first_ts: int) -> None:
        super().__init__(daemon=True)
        self.srv, self.node, self.acked, self.next_ts = srv, node, acked, first_ts
        self.stop = threading.Event()
        self.errors = 0
        self.refused: list[str] = []
        self.incidents: list[tuple[str, int]] = []  # (uuid, last seq sent)

    def _post(self, client: httpx.Client, path: str, body: object) -> bool:
        try:
            r = client.post(path, json=body, headers=self.node.headers)
        except httpx.TransportError:
            self.errors += 1
            return False
        if r.status_code >= 300:  # while it is up, nothing may be refused
            self.refused.append(f"{path}: {r.status_code} {r.text[:200]}")
            return False
        return True

    def _server_alive(self) -> bool:
        return self.srv.proc is not None and self.srv.proc.poll() is None

    def run(self) -> None:
        with self.srv.inside(), httpx.Client(base_url=self.srv.base, timeout=10) as client:
            i = 0
            while not self.stop.is_set():
                i += 1
                stamps = [self.next_ts + k for k in range(3)]
                self.next_ts += 3
                points = [{"ts": float(t), "pps": 1000.0 + t % 97, "bps": 8e5} for t in stamps]
                if self._post(client, "/api/v1/agent/metrics", {"points": points}):
                    self.acked.add("points", self.node.uuid, stamps)
                elif self.stop.is_set() or not self._server_alive():
                    return
                if i % 5 == 0:
                    inc = str(uuid.uuid4())
                    figures = {"seq": 1, "family": "udp_flood", "peak_pps": 1.0}
                    body = {"uuid": inc, "started_at": time.time(), "figures": figures}
                    if self._post(client, "/api/v1/agent/incidents", body):
                        self.acked.add("incident", inc)
                        self.incidents.append((inc, 1))
                elif self.incidents:
                    inc, seq = self.incidents[-1]
                    seq += 1
                    self.incidents[-1] = (inc, seq)
                    figures = {"seq": seq, "family": "udp_flood", "peak_pps": float(seq)}
                    if self._post(client, f"/api/v1/agent/incidents/{inc}", {"figures": figures}):
                        self.acked.add("update", inc, seq)


def _check_store(db: Path, nodes: dict[str, Node], acked: Acked) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        ids = dict(conn.execute("SELECT uuid, id FROM nodes").fetchall())
        stored = set(conn.execute("SELECT node_id, ts FROM node_metrics_raw").fetchall())
        missing = [(n, ts) for n, ts in acked.points if (ids[n], ts) not in stored]
        assert missing == [], f"{len(missing)} acknowledged points lost, e.g. {missing[:5]}"
        incidents = {r[0] for r in conn.execute("SELECT uuid FROM incidents")}
        assert acked.incidents <= incidents, acked.incidents - incidents
        seqs = dict(
            conn.execute(
                "SELECT i.uuid, s.seq FROM incident_report_seq s JOIN incidents i"
                " ON i.id = s.incident_id"
            ).fetchall()
        )
        peaks = dict(conn.execute("SELECT uuid, peak_pps FROM incidents").fetchall())
        for inc, seq in acked.seqs.items():
            assert seqs.get(inc, 1) >= seq, (inc, seqs.get(inc), seq)
            assert peaks[inc] >= seq  # the figures of that update were applied too


@pytest.mark.lab
def test_kill_9_during_agent_posts_loses_no_acknowledged_write(tmp_path: Path) -> None:
    acked = Acked()
    with served_control(tmp_path, isolated=False) as srv:
        ws = srv.workspace("acme")
        srv.start()
        nodes = {n.uuid: n for n in (srv.node(ws, f"edge-{i}") for i in range(WRITERS))}
        first_ts = {n: int(time.time()) - 3000 for n in nodes}  # inside raw retention
        per_round = []
        for _ in range(ROUNDS):
            before = acked.count
            writers = [Writer(srv, n, acked, first_ts[u]) for u, n in nodes.items()]
            for w in writers:
                w.start()
            deadline = time.monotonic() + 30
            while acked.count - before < ACKED_PER_ROUND and time.monotonic() < deadline:
                time.sleep(0.005)
            srv.kill9()  # mid-stream: the writers are still posting
            for w in writers:
                w.stop.set()
                w.join(timeout=15)
                first_ts[w.node.uuid] = w.next_ts
                assert w.refused == [], w.refused[:5]
            per_round.append(acked.count - before)
            assert acked.count - before >= ACKED_PER_ROUND, "the stream was too slow"
            _check_store(srv.db, nodes, acked)
            srv.start()  # recovers the WAL; then the next round on the same store
            # The restarted server serves what was acknowledged.
            some = sorted(acked.incidents)[:5]
            for inc in some:
                r = srv.request("GET", f"/api/v1/incidents/{inc}", headers=ws.headers)
                assert r.status_code == 200, r.text
        total = srv.request("GET", "/api/v1/incidents", headers=ws.headers).json()["total"]
        assert total >= len(acked.incidents)
    print(
        f"kill -9 x{ROUNDS}: {acked.count} acknowledged writes checked "
        f"({len(acked.points)} points, {len(acked.incidents)} incidents, "
        f"{len(acked.seqs)} incidents with updates), per round {per_round}"
    )
