"""What every fuzz run through BPF_PROG_TEST_RUN checks: no kernel error, no action but
PASS/DROP, and each frame counted exactly once (total, bytes, one size bucket, one
verdict, one L3 class), with the DROP actions matching the drop verdicts."""

from __future__ import annotations

from collections.abc import Iterable

from lab.bpf_testrun import XDP_DROP, XDP_PASS, test_run

from .conftest import Prog

DROP_VERDICTS = ("drop_src", "drop_prefix", "drop_signature", "rate_limited")


def run_counted_once(prog: Prog, frames: Iterable[bytes], expected: int) -> dict[str, int]:
    """Run every frame once, assert the counted-once invariants, return the verdict deltas."""
    before = prog.maps.read_counters()
    sent_bytes = 0
    actions = {XDP_PASS: 0, XDP_DROP: 0}
    fd = prog.fd
    for data in frames:
        actions[test_run(fd, data).retval] += 1  # KeyError: an action we never return
        sent_bytes += len(data)
    after = prog.maps.read_counters()

    def delta(field: str) -> dict[str, int]:
        a, b = getattr(after, field), getattr(before, field)
        return {k: a[k] - b[k] for k in a}

    packets, verdicts = delta("packets"), delta("verdicts")
    assert sum(actions.values()) == expected
    assert packets["total"] == expected
    assert delta("bytes")["total"] == sent_bytes
    assert sum(delta("sizes").values()) == expected
    assert sum(verdicts.values()) == expected
    assert sum(delta("verdict_bytes").values()) == sent_bytes
    assert packets["ipv4"] + packets["ipv6"] + packets["other_l3"] == expected
    assert packets["tcp"] + packets["udp"] + packets["icmp"] + packets["other_l4"] <= (
        packets["ipv4"] + packets["ipv6"]
    )
    assert actions[XDP_DROP] == sum(verdicts[v] for v in DROP_VERDICTS)
    return verdicts
