"""Reading the interface's receive losses from a real veth in a lab namespace, and
`LinkWatch` turning them into the per-second state the agent reports.

Losses are provoked for real (lab.unclaimed): frames of a local experimental EtherType
sent to the victim veth reach a kernel with no handler for them, which counts each one in
the interface's rx_dropped, as it counts a NIC's overflow.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from ftagent.link.link import LinkWatch
from ftagent.link.link_losses import LinkCounters, LinkStatsError, RxLosses, lost_pps
from ftagent.link.link_saturation import SaturationSettings
from lab.netns import Lab
from lab.unclaimed import UnclaimedFrames, wait_counted
from tests.capability import require, require_root

# paced: the victim's backlog takes the burst only when nothing else loads the machine
# (under the parallel pass a few frames of 1,500 went uncounted)
pytestmark = [pytest.mark.lab, pytest.mark.paced]


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    with Lab.create() as lab:
        yield lab


def burst(frames: UnclaimedFrames, seen: LinkCounters) -> None:
    """2,000 unclaimed frames, counted by the victim before this returns."""
    start = seen.read().dropped
    frames.send(2000)
    wait_counted(lambda: seen.read().dropped, start + 2000)


def test_the_losses_of_a_real_veth_count_every_unclaimed_frame(lab: Lab) -> None:
    with lab.inside(lab.victim_ns):
        counters = LinkCounters(lab.victim_if)
    frames = UnclaimedFrames(lab)
    try:
        before = counters.read()
        frames.send(1500)
        wait_counted(lambda: counters.read().dropped, before.dropped + 1500)
        after = counters.read()
    finally:
        frames.close()
        counters.close()
    assert (after.dropped - before.dropped, after.missed, after.fifo) == (1500, 0, 0)
    assert after.total - before.total == 1500
    seconds = after.read_at_s - before.read_at_s
    assert lost_pps(before, after) == pytest.approx(1500 / seconds)


def test_an_interface_of_another_namespace_is_refused_by_name(lab: Lab) -> None:
    # This thread is in the root namespace, where the victim's veth does not exist: the
    # reader must say so instead of reading some other interface's counters.
    with pytest.raises(LinkStatsError, match=lab.victim_if):
        LinkCounters(lab.victim_if)


def test_a_counter_that_went_backwards_counts_from_zero() -> None:
    before = RxLosses(dropped=5000, missed=70, fifo=3, read_at_s=10.0)
    recreated = RxLosses(dropped=200, missed=70, fifo=0, read_at_s=12.0)
    assert lost_pps(before, recreated) == pytest.approx((200 + 0 + 0) / 2.0)
    assert lost_pps(recreated, recreated) == 0.0


def test_the_watch_says_saturated_after_lossy_seconds_and_clears_after_quiet_ones(
    lab: Lab,
) -> None:
    walls = iter(float(1_700_000_000 + i) for i in range(100))
    watch = LinkWatch(lab.victim_if, SaturationSettings(500.0, 2, 2), wall=lambda: next(walls))
    with lab.inside(lab.victim_ns):
        watch.start()
        seen = LinkCounters(lab.victim_if)
    frames = UnclaimedFrames(lab)
    try:
        assert watch.state.readable and watch.state.losses is not None
        # Each "second" below is one call of second(): the rate is over the real time
        # between two reads, and a burst of frames between them makes it far above 500.
        burst(frames, seen)
        first = watch.second()
        assert first.rx_lost_pps >= 500 and not first.saturated
        burst(frames, seen)
        second = watch.second()
        assert second.saturated and second.saturated_since == 1_700_000_000.0
        assert second.losses is not None and second.losses.dropped >= 4000
        quiet = watch.second()
        assert quiet.rx_lost_pps == 0.0 and quiet.saturated  # one quiet second: still full
        assert not watch.second().saturated
    finally:
        frames.close()
        seen.close()
        watch.close()


def test_a_watch_on_a_missing_interface_reports_it_and_never_saturates() -> None:
    watch = LinkWatch("ftnone0", SaturationSettings(1.0, 1, 1))
    watch.start()
    state = watch.second()
    assert not state.readable and not state.saturated and state.rx_lost_pps == 0.0
    assert "ftnone0" in state.error
    watch.close()
