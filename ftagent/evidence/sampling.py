"""`Sampler`: the kernel's packet sampling and what the loop keeps of the samples.

It sets the kernel's one-in-N rate so that about `idle_samples_per_s` (quiet) or
`attack_samples_per_s` (an attack pending or active) packets a second are sampled, keeps
the last `pre_attack_s` of raw samples (the start of an incident's pcap) and the last
second of parsed packets (what the classifier and the mitigator's planners read).
"""

from __future__ import annotations

import threading
from collections import deque

from ftagent.config import CaptureConfig
from ftagent.datapath import Datapath, Sample
from ftagent.evidence.capture import SampleRing, sample_one_in
from ftagent.evidence.samples import PacketInfo, parse

RECENT_PACKETS_S = 1.0


class Sampler:
    def __init__(self, datapath: Datapath, capture: CaptureConfig, lock: threading.RLock) -> None:
        self.dp = datapath
        self.lock = lock
        self.ring = SampleRing(capture.pre_attack_s)
        self.recent: deque[tuple[int, PacketInfo]] = deque(maxlen=20000)
        self.sample_one_in = -1
        # Targets in effect: [capture]'s, or the control plane's overrides.
        self.idle_samples_per_s = capture.idle_samples_per_s
        self.attack_samples_per_s = capture.attack_samples_per_s

    def take(self, samples: list[Sample], now_ns: int) -> list[PacketInfo]:
        """Keep this window's samples; returns them parsed."""
        self.ring.extend(samples, now_ns)
        if not samples:
            return []
        parsed = [(s.timestamp_ns, parse(s)) for s in samples]
        self.recent.extend(parsed)
        cutoff = now_ns - int(RECENT_PACKETS_S * 1e9)
        while self.recent and self.recent[0][0] < cutoff:
            self.recent.popleft()
        return [p for _, p in parsed]

    def recent_packets(self) -> list[PacketInfo]:
        return [p for _, p in self.recent]

    def target(self, hot: bool) -> int:
        return self.attack_samples_per_s if hot else self.idle_samples_per_s

    def set_targets(self, idle: int, attack: int, hot: bool, pps: float) -> None:
        self.idle_samples_per_s, self.attack_samples_per_s = idle, attack
        self.adjust(hot, pps, force=True)

    def adjust(self, hot: bool, pps: float, force: bool = False) -> None:
        one_in = sample_one_in(pps, self.target(hot))
        old = self.sample_one_in
        # Only touch the map when the ratio moves by 2x or more (or sampling turns on/off).
        if (
            force
            or (one_in == 0) != (old == 0)
            or old <= 0
            or one_in >= 2 * old
            or 2 * one_in <= old
        ):
            with self.lock:
                self.dp.set_sample_rate(one_in)
            self.sample_one_in = one_in
