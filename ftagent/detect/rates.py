"""Turn two cumulative counter reads into one window of per-second rates.

The metric names below are what the baseline learns, the detector compares and the
control plane receives; `amp_<port>_pps` is UDP from one amplification source port.
"""

from __future__ import annotations

from dataclasses import dataclass

from ftagent.datapath import (
    AMP_PORT_NAMES,
    AMP_PORTS,
    CLASSES,
    SIZE_BUCKETS,
    TCP_FLAG_CLASSES,
    VERDICTS,
    Counters,
)

# The metric names are the shared classifier's (one definition for agent and control plane).
from ftcontract.classify import AMP_METRICS as AMP_METRICS
from ftcontract.classify import METRICS as METRICS
from ftcontract.classify import amp_metric as amp_metric

DROP_VERDICTS: tuple[str, ...] = ("drop_src", "drop_prefix", "drop_signature", "rate_limited")


@dataclass(frozen=True, slots=True)
class Window:
    """Rates (per second) over one poll interval, as the interface received them."""

    end_ns: int  # monotonic time of the second counter read
    duration_s: float
    metrics: dict[str, float]  # METRICS
    class_pps: dict[str, float]  # CLASSES
    class_bps: dict[str, float]  # CLASSES (bits per second)
    tcp_flag_pps: dict[str, float]  # TCP_FLAG_CLASSES
    udp_port_pps: dict[str, float]  # AMP_PORT_NAMES
    udp_port_bps: dict[str, float]  # AMP_PORT_NAMES
    size_pps: dict[str, float]  # SIZE_BUCKETS
    verdict_pps: dict[str, float]  # VERDICTS
    verdict_bps: dict[str, float]  # VERDICTS

    @property
    def dropped_pps(self) -> float:
        return sum(self.verdict_pps[v] for v in DROP_VERDICTS)

    @property
    def dropped_bps(self) -> float:
        return sum(self.verdict_bps[v] for v in DROP_VERDICTS)

    @property
    def mean_packet_size(self) -> float:
        pps = self.metrics["pps"]
        return self.metrics["bps"] / 8.0 / pps if pps > 0 else 0.0


def _delta(cur: dict[str, int], prev: dict[str, int], names: tuple[str, ...]) -> dict[str, int]:
    # A counter that went backwards means the program was reloaded: count from zero.
    out = {}
    for n in names:
        c, p = cur.get(n, 0), prev.get(n, 0)
        out[n] = c - p if c >= p else c
    return out


def _per_s(d: dict[str, int], seconds: float, scale: float = 1.0) -> dict[str, float]:
    return {k: v * scale / seconds for k, v in d.items()}


def compute_window(prev: Counters, cur: Counters) -> Window:
    """Rates between two reads (`cur` later than `prev`)."""
    seconds = max((cur.read_at_ns - prev.read_at_ns) / 1e9, 1e-6)
    pk = _per_s(_delta(cur.packets, prev.packets, CLASSES), seconds)
    by = _per_s(_delta(cur.bytes, prev.bytes, CLASSES), seconds, 8.0)
    fl = _per_s(_delta(cur.tcp_flags, prev.tcp_flags, TCP_FLAG_CLASSES), seconds)
    ports = AMP_PORT_NAMES
    up = _per_s(_delta(cur.udp_src_port_packets, prev.udp_src_port_packets, ports), seconds)
    ub = _per_s(_delta(cur.udp_src_port_bytes, prev.udp_src_port_bytes, ports), seconds, 8.0)
    sz = _per_s(_delta(cur.sizes, prev.sizes, SIZE_BUCKETS), seconds)
    vp = _per_s(_delta(cur.verdicts, prev.verdicts, VERDICTS), seconds)
    vb = _per_s(_delta(cur.verdict_bytes, prev.verdict_bytes, VERDICTS), seconds, 8.0)
    metrics = {
        "pps": pk["total"],
        "bps": by["total"],
        "tcp_pps": pk["tcp"],
        "udp_pps": pk["udp"],
        "icmp_pps": pk["icmp"],
        "fragment_pps": pk["fragment"],
        "syn_pps": fl["syn"],
        "ack_pps": fl["ack"],
        "rst_pps": fl["rst"],
        "amp_pps": sum(up[str(p)] for p in AMP_PORTS),
    }
    for p in AMP_PORTS:
        metrics[amp_metric(p)] = up[str(p)]
    return Window(
        end_ns=cur.read_at_ns,
        duration_s=seconds,
        metrics=metrics,
        class_pps=pk,
        class_bps=by,
        tcp_flag_pps=fl,
        udp_port_pps=up,
        udp_port_bps=ub,
        size_pps=sz,
        verdict_pps=vp,
        verdict_bps=vb,
    )


def average_windows(windows: list[Window]) -> dict[str, float]:
    """Time-weighted mean of each metric over several windows (a one-second aggregate)."""
    total = sum(w.duration_s for w in windows)
    if total <= 0:
        return dict.fromkeys(METRICS, 0.0)
    return {m: sum(w.metrics[m] * w.duration_s for w in windows) / total for m in METRICS}


def merge_windows(windows: list[Window]) -> Window:
    """One window with the time-weighted mean rates of several consecutive windows."""
    if len(windows) == 1:
        return windows[0]
    total = sum(w.duration_s for w in windows) or 1e-6

    def mean(get: str) -> dict[str, float]:
        keys = getattr(windows[0], get).keys()
        return {
            k: sum(getattr(w, get)[k] * w.duration_s for w in windows) / total for k in keys
        }

    return Window(
        end_ns=windows[-1].end_ns,
        duration_s=total,
        metrics=mean("metrics"),
        class_pps=mean("class_pps"),
        class_bps=mean("class_bps"),
        tcp_flag_pps=mean("tcp_flag_pps"),
        udp_port_pps=mean("udp_port_pps"),
        udp_port_bps=mean("udp_port_bps"),
        size_pps=mean("size_pps"),
        verdict_pps=mean("verdict_pps"),
        verdict_bps=mean("verdict_bps"),
    )
