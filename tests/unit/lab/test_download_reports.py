"""The long download's timeline as the reader process reports it: a stretch is summed
only once the reports have reached its end (a report that arrives late still counts)."""

from __future__ import annotations

import threading
import time

from lab.legit import _Download


def test_over_waits_for_the_reports_that_reach_the_end_of_the_stretch() -> None:
    d = _Download()
    d.add(10.0, 1000)
    d.add(10.5, 1000)

    def late() -> None:  # the reader's reports arrive after over() was asked
        time.sleep(0.2)
        d.add(11.2, 500)
        d.add(12.1, 0)  # a tick without data: the reader got past the stretch

    threading.Thread(target=late).start()
    rate, stall = d.over(10.0, 12.0)
    assert rate == (1000 + 1000 + 500) / 2.0
    assert stall == 12.0 - 11.2  # from the last read to the stretch's end


def test_a_reader_that_ended_is_not_waited_for() -> None:
    d = _Download()
    d.add(10.0, 4000)
    d.end()
    assert d.over(10.0, 11.0) == (4000.0, 1.0)
