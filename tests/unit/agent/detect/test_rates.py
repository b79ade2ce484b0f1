from ftagent.detect.rates import average_windows, compute_window, merge_windows
from tests.unit.agent.synth import counters, window


def test_rates_are_per_second_over_the_read_interval():
    prev = counters(1_000_000_000, packets={"total": 100, "udp": 100}, bytes={"total": 10_000})
    cur = counters(1_200_000_000, packets={"total": 300, "udp": 300}, bytes={"total": 30_000})
    w = compute_window(prev, cur)
    assert w.duration_s == 0.2
    assert w.metrics["pps"] == 1000.0
    assert w.metrics["udp_pps"] == 1000.0
    assert w.metrics["bps"] == 20_000 * 8 / 0.2


def test_counter_reset_counts_from_zero():
    prev = counters(0, packets={"total": 5000})
    cur = counters(100_000_000, packets={"total": 40})
    assert compute_window(prev, cur).metrics["pps"] == 400.0


def test_amp_ports_and_drops():
    w = window(udp=1000, udp_sport={11211: 800}, dropped=500)
    assert w.metrics["amp_11211_pps"] == 800.0
    assert w.metrics["amp_pps"] == 800.0
    assert w.dropped_pps == 500.0
    assert w.mean_packet_size == 100.0


def test_merge_and_average_are_time_weighted():
    a = window(seconds=0.1, udp=1000)
    b = window(seconds=0.3, udp=3000)
    assert merge_windows([a, b]).metrics["udp_pps"] == (100 + 900) / 0.4
    assert average_windows([a, b])["udp_pps"] == (100 + 900) / 0.4
