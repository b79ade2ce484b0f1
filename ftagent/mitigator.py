"""`Mitigator`: installs, renews and removes the drop rules an incident's response planned
(`ftagent.planning`), and owns them: it never touches rules made by `ftagent block` or by
an operator command. In dry_run it records what it would install; off, nothing.

Rules carry a TTL in the kernel and are renewed at a third of it while their incident is
active, so a dead agent's rules expire on their own (fail open). A resolved incident's
rules stay for the hold-down, then go.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import msgspec

from ftagent.config import MitigationConfig
from ftagent.datapath import Datapath, RuleSpec
from ftagent.events import RuleChange, RuleMatch
from ftagent.protection import Protected

log = logging.getLogger("ftagent.mitigator")


@dataclass(slots=True)
class OwnedRule:
    spec: RuleSpec
    incident_uuid: str | None
    installed: bool  # False in dry_run
    renewed_at: float
    hold_until: float | None = None  # set when its incident resolved


class Mitigator:
    """Owns the rules it installs (never touches rules made by `ftagent block`)."""

    def __init__(
        self,
        datapath: Datapath,
        cfg: MitigationConfig,
        protected: Protected,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dp = datapath
        self.cfg = cfg
        self.mode = cfg.mode
        self.ttl_s = cfg.rule_ttl_s
        self.protected = protected
        self.clock = clock
        self.rules: dict[RuleSpec, OwnedRule] = {}

    def _change(self, action: str, spec: RuleSpec, uuid: str | None, reason: str) -> RuleChange:
        change = RuleChange(
            action=action,
            rule=spec.describe(),
            kind=spec.kind,
            spec=RuleMatch(
                network=str(spec.network) if spec.network else None,
                proto=spec.proto,
                src_port=spec.src_port,
                dst_port=spec.dst_port,
                tcp_flags=spec.tcp_flags,
                tcp_flags_mask=spec.tcp_flags_mask,
                dst=str(spec.dst) if spec.dst is not None else None,
                rate_pps=spec.rate_pps,
                spare=spec.spare,
                spare_known=spec.spare_known,
                fragments=spec.fragments,
            ),
            ttl_s=self.ttl_s,
            incident_uuid=uuid,
            reason=reason,
            mode=self.mode,
            at=time.time(),
        )
        log.info(
            "rule %s: %s (%s)",
            action,
            change.rule,
            reason,
            extra={"event": "rule_changed", **msgspec.to_builtins(change)},
        )
        return change

    def apply(
        self, specs: list[RuleSpec], uuid: str, reason: str, label: str = "added"
    ) -> list[RuleChange]:
        """Install (or, in dry_run, only record) rules for an incident; returns changes."""
        changes: list[RuleChange] = []
        if self.mode == "off":
            return changes
        now = self.clock()
        for spec in specs:
            if spec not in self.rules and len(self.rules) >= self.cfg.max_rules:
                log.warning(
                    "rule limit %d reached; not adding %s", self.cfg.max_rules, spec.describe()
                )
                continue
            owned = self.rules.get(spec)
            if owned is None:
                # The kernel finds a signature rule by its match: a spec with the same
                # match and another rate or spare (a tightened guard) replaces it in place.
                for old in [s for s in self.rules if s.same_match(spec)]:
                    previous = self.rules.pop(old)
                    changes.append(
                        self._change(
                            "replaced", old, previous.incident_uuid, f"by {spec.describe()}"
                        )
                    )
            if self.mode == "on":
                try:
                    self.dp.add_rule(spec, self.ttl_s)
                except Exception as exc:  # a full map or bad rule must not stop the loop
                    log.error("could not install %s: %s", spec.describe(), exc)
                    continue
            action = label if self.mode == "on" else "would_add"
            if owned is not None:
                owned.incident_uuid, owned.hold_until, owned.renewed_at = uuid, None, now
                action = "renewed" if self.mode == "on" else action
            else:
                self.rules[spec] = OwnedRule(spec, uuid, self.mode == "on", now)
            changes.append(self._change(action, spec, uuid, reason))
        return changes

    def rules_of(self, uuid: str) -> list[RuleSpec]:
        return [s for s, o in self.rules.items() if o.incident_uuid == uuid]

    def release(self, uuid: str) -> None:
        """The incident resolved: its rules stay for the hold-down, then go."""
        until = self.clock() + self.cfg.holddown_s
        for o in self.rules.values():
            if o.incident_uuid == uuid:
                o.hold_until = until

    def tick(self) -> list[RuleChange]:
        """Renew rules of active incidents before they expire; remove held-down ones."""
        changes: list[RuleChange] = []
        now = self.clock()
        for spec, o in list(self.rules.items()):
            if o.hold_until is not None:
                if now >= o.hold_until:
                    if o.installed:
                        try:
                            self.dp.remove_rule(spec)
                        except Exception as exc:
                            log.error("could not remove %s: %s", spec.describe(), exc)
                    del self.rules[spec]
                    changes.append(self._change("removed", spec, o.incident_uuid, "hold-down over"))
                continue
            if o.installed and now - o.renewed_at >= self.ttl_s / 3:
                try:
                    self.dp.add_rule(spec, self.ttl_s)
                    o.renewed_at = now
                except Exception as exc:
                    log.error("could not renew %s: %s", spec.describe(), exc)
        return changes

    def active_count(self) -> int:
        return sum(1 for o in self.rules.values() if o.installed)

    def remove_all(self) -> None:
        """Used on exit only when asked to: normally rules stay until their TTL (fail open)."""
        for spec, o in list(self.rules.items()):
            if o.installed:
                try:
                    self.dp.remove_rule(spec)
                except Exception as exc:
                    log.error("could not remove %s: %s", spec.describe(), exc)
            del self.rules[spec]
