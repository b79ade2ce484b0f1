"""The whole loop, for real: `ftcontrol serve` and `ftagent run` (XDP on the lab's victim
veth) in the victim namespace, the API over its loopback, floods from the attacker
namespace. Registered with `ftagent deploy`.

One stack for the module; the tests run in file order (baseline, flood, operator rule,
control-plane outage during an attack). The outage lasts FT_E2E_OUTAGE_S seconds
(default 30, at least 5).
"""

from __future__ import annotations

import calendar
import itertools
import os
import shutil
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

OUTAGE_S = max(5.0, float(os.environ.get("FT_E2E_OUTAGE_S", "30")))
FLOOD_PPS = 20_000
PCAP_MAGICS = (b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\x0a\x0d\x0d\x0a")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from lab.demo import Stack
    from lab.trafgen import start_flood, stop_flood

    s = Stack(tmp_path_factory.mktemp("whole-loop"), node_name="edge-e2e")
    try:
        s.start()
        # light benign traffic the whole time, so the baseline is not all zeros
        benign = start_flood(s._lab(), "benign", packets=200 * 300, pps=200)
        try:
            yield s
        finally:
            stop_flood(benign)
    finally:
        s.close()


def memcached_like(incident: dict[str, Any]) -> bool:
    family = incident["family"]
    return bool(
        family == "memcached_amplification"
        or (family == "multi_vector" and "memcached_amplification" in (incident["subtype"] or ""))
    )


def test_deploy_writes_a_private_config_and_the_baseline_arrives(stack: Any) -> None:
    assert stat.S_IMODE(stack.config.stat().st_mode) == 0o600
    node = stack.wait_for_baseline()
    assert node["status"] == "online"
    assert node["baseline"]["avg_pps"] > 0
    assert node["baseline"]["p95_pps"] >= node["baseline"]["avg_pps"]
    assert stack.get("/api/v1/status")["overall"] == "operational"


def test_flood_becomes_an_incident_with_its_pcap_then_resolves(stack: Any) -> None:
    from lab.trafgen import start_flood, stop_flood

    flood = start_flood(stack._lab(), "memcached_amplification", packets=FLOOD_PPS * 5,
                        pps=FLOOD_PPS)  # fmt: skip
    try:
        active = stack.wait_until(
            lambda: stack.incidents(status="active"), 20.0, "an active incident"
        )
        status = stack.get("/api/v1/status")
        assert status["under_attack"] == 1
        assert status["overall"] != "operational"
        assert stack.node()["status"] == "attack"
        flood.wait(30)
    finally:
        stop_flood(flood)
    uuid = active[0]["uuid"]
    incident = stack.wait_until(
        lambda: (
            (i := stack.get(f"/api/v1/incidents/{uuid}")["incident"])["status"] == "resolved" and i
        ),
        30.0,
        "the incident to resolve",
    )
    assert memcached_like(incident), incident
    assert incident["peak_pps"] > FLOOD_PPS / 4
    assert incident["top_sources"], incident
    assert incident["mitigation_rules"], incident
    assert "sport=11211" in " ".join(r["match"] for r in incident["mitigation_rules"])
    assert incident["summary"]
    pcap = stack.wait_until(
        lambda: (
            (r := stack.request("GET", f"/api/v1/incidents/{uuid}/pcap")).status_code == 200 and r
        ),
        20.0,
        "the pcap",
    )
    assert pcap.content[:4] in PCAP_MAGICS
    assert len(pcap.content) > 24
    # The detail names the pcap and how many distinct sources the agent saw (spoofed
    # reflectors: many more than the few top sources listed).
    shown = stack.get(f"/api/v1/incidents/{uuid}")["incident"]
    assert shown["pcap"] == {
        "sha256": pcap.headers["x-content-sha256"],
        "size": len(pcap.content),
        "uploaded_at": shown["pcap"]["uploaded_at"],
        "url": f"/api/v1/incidents/{uuid}/pcap",
    }
    assert shown["source_count"] > 10, shown
    stack.wait_until(
        lambda: stack.get("/api/v1/status")["overall"] == "operational", 20.0, "operational"
    )
    assert stack.get("/api/v1/status")["under_attack"] == 0


def test_operator_block_reaches_the_kernel_and_unblock_removes_it(stack: Any) -> None:
    lab = stack._lab()
    rules = f"/api/v1/nodes/{stack.node_uuid}/rules"
    r = stack.request("POST", rules, json={"target": lab.attacker_v4, "ttl_s": 120})
    assert r.status_code == 201, r.text
    rule_id = r.json()["rule"]["id"]

    def rule_status() -> str:
        listed = stack.get(rules)["rules"]
        return str(next(x for x in listed if x["id"] == rule_id)["status"])

    stack.wait_until(lambda: rule_status() == "active", 20.0, "the agent to apply the block")
    # the benign traffic comes from the attacker's own address: XDP now drops it
    stack.wait_until(
        lambda: stack.node_gauges().get("ftcontrol_node_dropped_pps", 0.0) > 50, 15.0,
        "drops of the blocked address",
    )  # fmt: skip
    assert stack.request("DELETE", f"{rules}/{rule_id}").status_code == 200
    stack.wait_until(lambda: rule_status() == "removed", 20.0, "the agent to unblock")
    stack.wait_until(
        lambda: stack.node_gauges().get("ftcontrol_node_dropped_pps", 1.0) == 0.0, 15.0,
        "drops to stop",
    )  # fmt: skip


def test_control_plane_outage_during_an_attack_loses_and_duplicates_nothing(
    stack: Any,
) -> None:
    from lab.trafgen import start_flood, stop_flood

    before = {i["uuid"] for i in stack.incidents()}
    stack.stop_control()
    outage_start = time.time()
    flood = start_flood(stack._lab(), "memcached_amplification", packets=FLOOD_PPS * 6,
                        pps=FLOOD_PPS)  # fmt: skip
    try:
        flood.wait(max(10.0, OUTAGE_S))
    finally:
        stop_flood(flood)
    time.sleep(max(0.0, OUTAGE_S - (time.time() - outage_start)))
    outage_end = time.time()
    stack.start_control()

    def settled() -> list[dict[str, Any]] | None:
        new = [i for i in stack.incidents() if i["uuid"] not in before]
        gauges = stack.node_gauges()
        drained = gauges.get("ftcontrol_node_spool_entries", 1.0) == 0.0
        if new and all(i["status"] == "resolved" for i in new) and drained:
            return new
        return None

    new = stack.wait_until(settled, 60.0, "the spool to replay")
    assert len(new) == 1, new  # the attack during the outage: one incident, not two
    incident = stack.get(f"/api/v1/incidents/{new[0]['uuid']}")["incident"]
    assert memcached_like(incident), incident
    assert incident["ended_at"] is not None
    # It happened while the control plane was down: times are the agent's, not the replay's.
    started = calendar.timegm(time.strptime(incident["started_at"], "%Y-%m-%dT%H:%M:%SZ"))
    assert outage_start - 2 <= started <= outage_end
    pcap = stack.wait_until(
        lambda: (r := stack.request("GET", f"/api/v1/incidents/{incident['uuid']}/pcap"))
        .status_code == 200 and r,
        20.0,
        "the replayed pcap",
    )  # fmt: skip
    assert pcap.content[:4] in PCAP_MAGICS
    assert stack.get("/api/v1/incidents")["total"] == len(before) + 1
    # every second of the outage is stored once: no gap longer than the agent's own
    # 1-second cadence can produce, no second twice
    seconds = stored_seconds(stack.db, outage_start - 3, outage_end + 1)
    assert len(seconds) == len(set(seconds))
    gaps = [b - a for a, b in itertools.pairwise(seconds)]
    assert seconds[0] <= outage_start + 2 and seconds[-1] >= outage_end - 2, seconds
    assert max(gaps) <= 2, gaps
    assert len(seconds) >= (outage_end - outage_start) * 0.8


def stored_seconds(db: Path, since: float, until: float) -> list[int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute(
            "SELECT ts FROM node_metrics_raw WHERE ts BETWEEN ? AND ? ORDER BY ts",
            (int(since), int(until)),
        ).fetchall()
    return [int(r[0]) for r in rows]
