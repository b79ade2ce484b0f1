"""`Protection`: the networks no rule may target, one object for every path that makes a
rule (the mitigator's plans, the control plane's operator commands).

Refused the same way everywhere: the allow-list (the config's, or the control plane's
replacement), the control plane's address, the node's own addresses and the management
prefixes. A rule is refused when its network overlaps any of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from ftagent.datapath import IPNetwork


@dataclass(slots=True)
class Protected:
    """Networks no rule may target, each with the reason."""

    entries: list[tuple[IPNetwork, str]] = field(default_factory=list)

    def add(self, networks: Iterable[IPNetwork], reason: str) -> None:
        self.entries.extend((n, reason) for n in networks)

    def reason_for(self, target: IPNetwork) -> str | None:
        for net, reason in self.entries:
            if net.version == target.version and net.overlaps(target):  # type: ignore[arg-type,unused-ignore]
                return reason
        return None


class Protection:
    def __init__(
        self,
        allowlist: list[IPNetwork],
        control: list[IPNetwork],
        own: list[IPNetwork],
        management: list[IPNetwork],
    ) -> None:
        self.allowlist = list(allowlist)
        self.control = list(control)
        self.own = list(own)
        self.management = list(management)
        # Shared with the mitigator's planners; rebuilt in place when the allow-list moves.
        self.protected = Protected()
        self._rebuild()

    def _rebuild(self) -> None:
        self.protected.entries.clear()
        self.protected.add(self.allowlist, "allow-list")
        self.protected.add(self.control, "control-plane address")
        self.protected.add(self.own, "node's own address")
        self.protected.add(self.management, "management prefix")

    def reason_for(self, target: IPNetwork) -> str | None:
        """Why no rule may target `target` (None: it may)."""
        return self.protected.reason_for(target)

    def set_allowlist(self, allowlist: list[IPNetwork]) -> bool:
        """Replace the allow-list; True when it changed (the kernel's copy must follow)."""
        if allowlist == self.allowlist:
            return False
        self.allowlist = list(allowlist)
        self._rebuild()
        return True

    def kernel_allowlist(self) -> list[IPNetwork]:
        """What the XDP program never drops, even under a signature rule. Own addresses are
        not in it: a spoofed flood may claim them as its source."""
        out: list[IPNetwork] = []
        for n in (*self.allowlist, *self.control, *self.management):
            if n not in out:
                out.append(n)
        return out
