"""Frames nobody on the victim claims: a local experimental EtherType (0x88b5) sent from
the attacker's end of the lab veth. The victim's kernel has no protocol handler for it and
counts each frame in the interface's rx_dropped, as it counts a NIC's overflow: a real,
bounded way to make the agent's link losses rise (XDP passes these frames untouched).

    frames = UnclaimedFrames(lab)
    frames.send(2000)
    wait_counted(lambda: counters.read().dropped, before + 2000)   # the victim saw them
    frames.close()
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Protocol

UNCLAIMED_ETHERTYPE = b"\x88\xb5"  # IEEE 802 local experimental 1: no handler claims it
MAX_BURST = 100_000  # one send() call's bound


class FrameLab(Protocol):
    """What the sender needs of a lab (lab.netns.Lab has it)."""

    @property
    def attacker_ns(self) -> str: ...
    @property
    def attacker_if(self) -> str: ...
    @property
    def attacker_mac(self) -> str: ...
    @property
    def victim_mac(self) -> str: ...


class UnclaimedFrames:
    def __init__(self, lab: FrameLab) -> None:
        from lab.netns import enter_netns

        with enter_netns(lab.attacker_ns):  # the socket stays in the attacker's namespace
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            self.sock.bind((lab.attacker_if, 0))
        dst = bytes.fromhex(lab.victim_mac.replace(":", ""))
        src = bytes.fromhex(lab.attacker_mac.replace(":", ""))
        self.frame = dst + src + UNCLAIMED_ETHERTYPE + b"fasttrace unclaimed frame".ljust(46)

    def send(self, count: int) -> None:
        if not 0 <= count <= MAX_BURST:
            raise ValueError(f"count: {count} is not within 0..{MAX_BURST}")
        for _ in range(count):
            self.sock.send(self.frame)

    def close(self) -> None:
        self.sock.close()


def wait_counted(read_dropped: Callable[[], int], at_least: int, within_s: float = 5.0) -> None:
    """Wait until the victim counted `at_least` drops (it drops the frames in its own
    softirq, a moment after the send)."""
    deadline = time.monotonic() + within_s
    while read_dropped() < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError(f"the victim counted fewer than {at_least} dropped frames")
        time.sleep(0.01)
