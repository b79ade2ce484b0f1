"""Which kernel rules the control plane's fleet orders keep, on disk for `ftagent rules`
(a separate process that reads the rules from the pinned maps and cannot ask the loop).

The loop rewrites `<state_dir>/fleet_rules.json` whenever the fleet orders' rules change
(typed Structs, written whole then renamed); `ftagent rules` marks a kernel rule
fleet-owned when its kind and match are listed there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import msgspec

from ftagent.datapath import RuleSpec
from ftagent.events import RuleMatch
from ftagent.mitigate.mitigator import rule_match

log = logging.getLogger("ftagent.fleet")

FILE = "fleet_rules.json"


class FleetOwnedRule(msgspec.Struct, frozen=True, kw_only=True):
    kind: str  # src | prefix | signature
    match: RuleMatch
    incident_uuids: list[str]  # the fleet incidents whose orders keep it


class FleetRulesFile(msgspec.Struct, kw_only=True):
    rules: list[FleetOwnedRule] = []


def owned_entry(spec: RuleSpec, uuids: list[str]) -> FleetOwnedRule:
    return FleetOwnedRule(kind=spec.kind, match=rule_match(spec), incident_uuids=sorted(uuids))


def save(path: Path, owned: dict[RuleSpec, list[str]]) -> None:
    body = FleetRulesFile(rules=[owned_entry(s, u) for s, u in owned.items()])
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_bytes(msgspec.json.encode(body))
        os.replace(tmp, path)
    except OSError as exc:
        log.error("could not save the fleet rules to %s: %s", path, exc)


def load(path: Path) -> FleetRulesFile:
    """The fleet rules the running agent wrote (none when absent or unreadable)."""
    try:
        return msgspec.json.decode(path.read_bytes(), type=FleetRulesFile)
    except FileNotFoundError:
        return FleetRulesFile()
    except (OSError, msgspec.DecodeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return FleetRulesFile()


def owners_of(spec: RuleSpec, file: FleetRulesFile) -> list[str]:
    """The fleet incidents keeping a kernel rule ([] when none)."""
    match = rule_match(spec)
    for r in file.rules:
        if r.kind == spec.kind and r.match == match:
            return r.incident_uuids
    return []
