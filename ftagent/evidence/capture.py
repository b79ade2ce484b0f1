"""Sampled packets -> a standard pcap file per incident, bounded in packets and bytes.

The kernel hands over the first 128 bytes of one packet in N; each becomes a pcap record
with caplen = the bytes we have and len = the wire length, LINKTYPE_ETHERNET, microsecond
timestamps (the classic format every tool opens: tcpdump, tshark, dpkt, scapy).
A ring keeps the last `pre_attack_s` seconds of samples so the file starts before the
attack did. Kernel timestamps (CLOCK_MONOTONIC) are turned into wall-clock time.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from collections import deque
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from ftagent.config import CaptureConfig
from ftagent.datapath import Sample

log = logging.getLogger("ftagent.agent")

PCAP_MAGIC_US = 0xA1B2C3D4
LINKTYPE_ETHERNET = 1
SNAPLEN = 128
GLOBAL_HEADER = struct.pack("<IHHiIII", PCAP_MAGIC_US, 2, 4, 0, 0, SNAPLEN, LINKTYPE_ETHERNET)
RECORD_HEADER = struct.Struct("<IIII")


def mono_to_wall(
    ts_ns: int, now_mono_ns: int | None = None, now_wall: float | None = None
) -> float:
    mono = time.monotonic_ns() if now_mono_ns is None else now_mono_ns
    wall = time.time() if now_wall is None else now_wall
    return wall - (mono - ts_ns) / 1e9


class SampleRing:
    """The samples of the last `seconds` (and at most `max_items`)."""

    def __init__(self, seconds: float, max_items: int = 20000) -> None:
        self.seconds = seconds
        self.items: deque[Sample] = deque(maxlen=max_items)

    def extend(self, samples: Iterable[Sample], now_ns: int) -> None:
        self.items.extend(samples)
        cutoff = now_ns - int(self.seconds * 1e9)
        while self.items and self.items[0].timestamp_ns < cutoff:
            self.items.popleft()


class PcapWriter:
    """Appends records until a bound is reached; `full` then stays True."""

    def __init__(self, path: Path, max_packets: int, max_bytes: int) -> None:
        self.path = path
        self.max_packets = max_packets
        self.max_bytes = max_bytes
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Packet samples can carry payload bytes: owner-only from the first byte.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._f: BinaryIO | None = os.fdopen(fd, "wb")
        self._f.write(GLOBAL_HEADER)
        self.packets = 0
        self.size = len(GLOBAL_HEADER)
        self.full = False

    def write(self, samples: Iterable[Sample]) -> int:
        """Append samples (oldest first); returns how many were written."""
        if self._f is None or self.full:
            return 0
        mono, wall = time.monotonic_ns(), time.time()
        n = 0
        for s in samples:
            data = s.data[:SNAPLEN]
            rec = RECORD_HEADER.size + len(data)
            if self.packets >= self.max_packets or self.size + rec > self.max_bytes:
                self.full = True
                break
            ts = mono_to_wall(s.timestamp_ns, mono, wall)
            sec = int(ts)
            usec = min(int((ts - sec) * 1e6), 999_999)
            self._f.write(RECORD_HEADER.pack(sec, usec, len(data), max(s.wire_len, len(data))))
            self._f.write(data)
            self.packets += 1
            self.size += rec
            n += 1
        return n

    def close(self) -> None:
        if self._f is not None:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            self._f = None


class IncidentPcap:
    """One incident's pcap: starts with the ring's samples, closed when the incident ends;
    at most `keep_files` incident files stay in its directory."""

    def __init__(self, writer: PcapWriter, keep_files: int) -> None:
        self.writer = writer
        self.keep_files = keep_files

    @property
    def path(self) -> Path:
        return self.writer.path

    @classmethod
    def open(cls, path: Path, cfg: CaptureConfig, ring: Iterable[Sample]) -> IncidentPcap | None:
        try:
            writer = PcapWriter(path, cfg.max_packets, cfg.max_bytes)
            writer.write(ring)
        except OSError as exc:
            log.error("cannot write pcap: %s", exc)
            return None
        return cls(writer, cfg.keep_files)

    def write(self, samples: Iterable[Sample]) -> None:
        if not self.writer.full:
            self.writer.write(samples)

    def close(self, incident_uuid: str) -> bool:
        """Finish the file; True when it is complete (then older files are pruned)."""
        w = self.writer
        try:
            w.close()
        except OSError as exc:
            log.error("cannot finish pcap %s: %s", w.path, exc)
            return False
        log.info(
            "pcap written: %s (%d packets)",
            w.path,
            w.packets,
            extra={"event": "pcap_ready", "incident_uuid": incident_uuid,
                   "path": str(w.path), "packets": w.packets},
        )  # fmt: skip
        prune(w.path.parent, self.keep_files)
        return True


def prune(directory: Path, keep: int) -> list[Path]:
    """Delete the oldest pcap files beyond `keep`; returns what was deleted."""
    files = sorted(directory.glob("*.pcap"), key=lambda p: p.stat().st_mtime)
    doomed = files[: max(0, len(files) - keep)]
    for p in doomed:
        p.unlink(missing_ok=True)
    return doomed


def sample_one_in(pps: float, target_per_s: int) -> int:
    """The kernel's 1-in-N for about `target_per_s` samples at `pps` (0: sampling off)."""
    if target_per_s <= 0:
        return 0
    return max(1, int(pps / target_per_s))
