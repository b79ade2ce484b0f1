"""The collateral benchmark's SYN-flood CPU table: one line per case and IP version, the
victim's receive time in cores and per frame, median and range over the runs."""

from __future__ import annotations

from bench.bench_collateral import SynCpu, syn_cpu_table
from lab.legit import ClassResult
from lab.napitime import NapiTotals


def case(label: str, ns: int, frames: int, *, port_open: bool = True) -> SynCpu:
    return SynCpu(
        label=label, mode="on", ip_version=4, flood=True, port_open=port_open,
        softirq_cores=0.4, system_cores=0.3, victim_rx=NapiTotals(ns, frames, frames),
        syncookies_sent=0, victim_tx=400, no_route=0, window_s=2.0,
        connected=ClassResult(80, 80) if port_open else None, attack_pps=40_000.0,
        rules=(("signature proto=6 flags=0x02/0x12 spare=sockets", 80_000, 0),),
    )  # fmt: skip


def test_one_line_per_case_with_the_victims_cores_and_time_per_frame() -> None:
    lines = syn_cpu_table([
        case("open port, mitigation on", 500_000_000, 80_000),
        case("open port, mitigation on", 400_000_000, 80_000),
        case("open port, mitigation on", 480_000_000, 80_000),
        case("closed port, mitigation on", 260_000_000, 80_000, port_open=False),
    ])  # fmt: skip
    (open_on,) = [line for line in lines if line.startswith("open port")]
    # 0.48 s of 2 s: 0.24 cores (runs 0.20-0.25); 6.00 us per frame (5.00-6.25)
    assert "| 0.240 [0.200-0.250] | 6.00 [5.00-6.25] |" in open_on
    assert "| 100 |" in open_on  # the clients connected
    (closed_on,) = [line for line in lines if line.startswith("closed port")]
    assert "| 0.130 | 3.25 |" in closed_on and "| - |" in closed_on  # :80 closed: no clients
    assert "[80,000, 0]" in closed_on  # the rule's dropped and spared packets


def test_no_case_no_table() -> None:
    assert syn_cpu_table([]) == []
