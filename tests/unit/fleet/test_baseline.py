"""A group's baseline: learns, gives p99 once ready (0 before: floors apply), saves and
restores its state, drops a state older than the max age."""

from __future__ import annotations

import msgspec

from control.fleet.baseline import BaselineState, GroupBaseline

T0 = 1_765_150_000.0


def learned(n: int) -> GroupBaseline:
    b = GroupBaseline(window_s=600, min_samples=30, hour_min_samples=600)
    for i in range(n):
        b.learn({"pps": 1000.0 + (i % 10) * 10, "udp_pps": 500.0}, T0 + i)
    return b


def test_p99_zero_until_ready_then_learned() -> None:
    b = learned(29)
    assert not b.ready and b.p99("pps", T0) == 0.0 and b.averages() == {}
    b.learn({"pps": 1000.0}, T0 + 29)
    assert b.ready
    assert 1080.0 <= b.p99("pps", T0 + 30) <= 1090.0
    assert b.averages()["udp_pps"] > 0


def test_state_survives_a_json_round_trip() -> None:
    b = learned(40)
    text = msgspec.json.encode(b.state(T0 + 40))
    again = GroupBaseline(window_s=600, min_samples=30, hour_min_samples=600)
    assert again.restore(msgspec.json.decode(text, type=BaselineState), T0 + 100, 86400.0)
    assert again.samples == 40 and again.ready
    assert again.p99("pps", T0 + 100) == b.p99("pps", T0 + 40)


def test_old_or_broken_state_is_dropped() -> None:
    state = learned(40).state(T0)
    fresh = GroupBaseline(window_s=600, min_samples=30, hour_min_samples=600)
    assert not fresh.restore(state, T0 + 90_000, 86400.0)
    state.window["pps"][0] = float("nan")
    assert not fresh.restore(state, T0 + 10, 86400.0)
    assert fresh.samples == 0
