"""`Mitigator`: installs, renews and removes the drop rules planned for the node's own
incidents (`ftagent.respond.response`) and for the control plane's fleet orders
(`ftagent.orders.fleet`), and owns them: it never touches rules made by `ftagent block`
or by an operator command. In dry_run it records what it would install; off, nothing.

A rule may have several owners (an incident of the node and a fleet order can plan the
same rule): it stays in the kernel while any owner keeps it and goes when the last one
lets go, so the end of either owner never removes what the other still needs.

- An incident's rules carry `rule_ttl_s` in the kernel and are renewed at a third of it
  while the incident is active, so a dead agent's rules expire on their own (fail open).
  A resolved incident's rules stay for the hold-down, then go.
- A fleet order's rules carry the order's TTL from the moment its last answer arrived
  (`renew`): only answers from the control plane renew them, so an agent cut off from it
  loses them when the TTL runs out in the kernel (fail open). An order no longer listed
  lets go of its rules at once (`drop`).

The kernel holds one expiry per rule: it is the latest any owner needs (never shortened
under an owner), and shortened again to what the remaining owners need when one leaves.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

import msgspec

from ftagent.config import MitigationConfig
from ftagent.datapath import Datapath, RuleSpec
from ftagent.events import RuleChange, RuleMatch
from ftagent.mitigate.protection import Protected

log = logging.getLogger("ftagent.mitigator")

OwnerKind = Literal["incident", "fleet"]


def rule_match(spec: RuleSpec) -> RuleMatch:
    """A RuleSpec's match, field by field (what a rule change and the fleet rules file
    carry)."""
    return RuleMatch(
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
    )


@dataclass(slots=True)
class Owner:
    """Why one owner keeps a rule (owners are keyed by incident uuid: the node's own
    incident, or a fleet incident whose order planned the rule)."""

    kind: OwnerKind
    hold_until: float | None = None  # incident resolved: kept until then
    expires_at: float | None = None  # fleet order: kept until then unless renewed

    def due(self) -> float | None:
        """Until when this owner keeps the rule (None: while its incident is active)."""
        return self.hold_until if self.kind == "incident" else self.expires_at


@dataclass(slots=True)
class OwnedRule:
    spec: RuleSpec
    owners: dict[str, Owner]
    installed: bool  # False in dry_run
    renewed_at: float  # last time the kernel expiry was set (mitigator clock)
    expires_at: float = 0.0  # the kernel expiry as last set (mitigator clock)

    @property
    def incident_uuid(self) -> str | None:
        """The first owner (what a rule change names)."""
        return next(iter(self.owners), None)

    def fleet_owners(self) -> list[str]:
        return [u for u, o in self.owners.items() if o.kind == "fleet"]


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

    def _change(
        self,
        action: str,
        spec: RuleSpec,
        uuid: str | None,
        reason: str,
        ttl_s: float | None = None,
    ) -> RuleChange:
        change = RuleChange(
            action=action,
            rule=spec.describe(),
            kind=spec.kind,
            spec=rule_match(spec),
            ttl_s=self.ttl_s if ttl_s is None else ttl_s,
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
        self,
        specs: list[RuleSpec],
        uuid: str,
        reason: str,
        label: str = "added",
        *,
        fleet_ttl_s: float | None = None,
    ) -> list[RuleChange]:
        """Install (or, in dry_run, only record) rules for an owner; returns the changes.

        `fleet_ttl_s` None: the owner is an incident of the node (kernel TTL `ttl_s`,
        renewed by `tick`); else a fleet order whose rules expire that long from now
        unless `renew`ed."""
        changes: list[RuleChange] = []
        if self.mode == "off":
            return changes
        now = self.clock()
        kind: OwnerKind = "incident" if fleet_ttl_s is None else "fleet"
        wanted_ttl = self.ttl_s if fleet_ttl_s is None else fleet_ttl_s
        for spec in specs:
            if spec not in self.rules and len(self.rules) >= self.cfg.max_rules:
                log.warning(
                    "rule limit %d reached; not adding %s", self.cfg.max_rules, spec.describe()
                )
                continue
            owned = self.rules.get(spec)
            inherited: dict[str, Owner] = {}
            kept_until = 0.0
            if owned is None:
                # The kernel finds a signature rule by its match: a spec with the same
                # match and another rate or spare (a tightened guard) replaces it in place,
                # and keeps its owners (the kernel still holds one rule for all of them).
                for old in [s for s in self.rules if s.same_match(spec)]:
                    previous = self.rules.pop(old)
                    inherited.update(previous.owners)
                    kept_until = max(kept_until, previous.expires_at)
                    changes.append(
                        self._change(
                            "replaced", old, previous.incident_uuid, f"by {spec.describe()}"
                        )
                    )
            else:
                kept_until = owned.expires_at
            # Never shorten the kernel expiry another owner relies on.
            ttl = max(wanted_ttl, kept_until - now)
            if self.mode == "on":
                try:
                    self.dp.add_rule(spec, ttl)
                except Exception as exc:  # a full map or bad rule must not stop the loop
                    log.error("could not install %s: %s", spec.describe(), exc)
                    continue
            owner = Owner(kind, expires_at=now + fleet_ttl_s if fleet_ttl_s else None)
            action = label if self.mode == "on" else "would_add"
            if owned is not None:
                owned.owners[uuid] = owner
                owned.renewed_at, owned.expires_at = now, now + ttl
                action = "renewed" if self.mode == "on" else action
            else:
                owners = {**inherited, uuid: owner}
                self.rules[spec] = OwnedRule(spec, owners, self.mode == "on", now, now + ttl)
            changes.append(self._change(action, spec, uuid, reason, ttl))
        return changes

    def renew(self, uuid: str, ttl_s: float) -> None:
        """A fleet order was listed again: its rules are kept `ttl_s` from now (quietly:
        renewals are not rule changes)."""
        now = self.clock()
        for spec, o in self.rules.items():
            owner = o.owners.get(uuid)
            if owner is None:
                continue
            owner.expires_at = now + ttl_s
            if o.installed and o.expires_at < now + ttl_s:
                try:
                    self.dp.add_rule(spec, ttl_s)
                    o.renewed_at, o.expires_at = now, now + ttl_s
                except Exception as exc:
                    log.error("could not renew %s: %s", spec.describe(), exc)

    def rules_of(self, uuid: str) -> list[RuleSpec]:
        return [s for s, o in self.rules.items() if uuid in o.owners]

    def release(self, uuid: str) -> None:
        """The incident resolved: its rules stay for the hold-down, then go."""
        until = self.clock() + self.cfg.holddown_s
        for o in self.rules.values():
            owner = o.owners.get(uuid)
            if owner is not None:
                owner.hold_until = until

    def drop(
        self, uuid: str, reason: str, only: Collection[RuleSpec] | None = None
    ) -> list[RuleChange]:
        """The owner lets go of its rules (of `only` these) now: a rule no other owner
        keeps is removed."""
        changes: list[RuleChange] = []
        for spec, o in list(self.rules.items()):
            if only is not None and spec not in only:
                continue
            if o.owners.pop(uuid, None) is not None:
                changes.extend(self._settle(spec, o, uuid, reason))
        return changes

    def _settle(
        self, spec: RuleSpec, o: OwnedRule, uuid: str | None, reason: str
    ) -> list[RuleChange]:
        """After an owner left: remove the rule if none is left, else bring the kernel
        expiry back to what the remaining owners need."""
        if not o.owners:
            if o.installed:
                try:
                    self.dp.remove_rule(spec)
                except Exception as exc:
                    log.error("could not remove %s: %s", spec.describe(), exc)
            del self.rules[spec]
            return [self._change("removed", spec, uuid, reason)]
        now = self.clock()
        dues = [owner.due() for owner in o.owners.values()]
        if any(d is None for d in dues):
            return []  # an active incident keeps it: tick renews it
        until = max(d for d in dues if d is not None)
        if o.installed and until < o.expires_at and until > now:
            try:
                self.dp.add_rule(spec, until - now)
                o.expires_at = until
            except Exception as exc:
                log.error("could not shorten %s: %s", spec.describe(), exc)
        return []

    def tick(self) -> list[RuleChange]:
        """Renew rules of active incidents before they expire; let go of held-down rules
        and of fleet orders not renewed in time; remove rules no owner keeps."""
        changes: list[RuleChange] = []
        now = self.clock()
        for spec, o in list(self.rules.items()):
            gone = [u for u, owner in o.owners.items() if (owner.due() or float("inf")) <= now]
            if gone:
                reasons = {o.owners.pop(u).kind for u in gone}
                reason = "hold-down over" if "incident" in reasons else "fleet order expired"
                changes.extend(self._settle(spec, o, gone[0], reason))
                if spec not in self.rules:
                    continue
            active = any(owner.due() is None for owner in o.owners.values())
            if active and o.installed and now - o.renewed_at >= self.ttl_s / 3:
                ttl = max(self.ttl_s, o.expires_at - now)
                try:
                    self.dp.add_rule(spec, ttl)
                    o.renewed_at, o.expires_at = now, now + ttl
                except Exception as exc:
                    log.error("could not renew %s: %s", spec.describe(), exc)
        return changes

    def active_count(self) -> int:
        return sum(1 for o in self.rules.values() if o.installed)

    def fleet_owned(self) -> dict[RuleSpec, list[str]]:
        """Rules a fleet order keeps, with the fleet incidents keeping each."""
        return {s: o.fleet_owners() for s, o in self.rules.items() if o.fleet_owners()}

    def remove_all(self) -> None:
        """Used on exit only when asked to: normally rules stay until their TTL (fail open)."""
        for spec, o in list(self.rules.items()):
            if o.installed:
                try:
                    self.dp.remove_rule(spec)
                except Exception as exc:
                    log.error("could not remove %s: %s", spec.describe(), exc)
            del self.rules[spec]
