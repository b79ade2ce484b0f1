"""Operator block/unblock commands from the control plane, applied on the agent loop's
thread under its datapath lock, refused for protected targets by the same `Protection`
the mitigator plans with (so every path refuses the same networks)."""

from __future__ import annotations

import ipaddress
import logging

from ftagent.datapath import Datapath, IPNetwork, RuleSpec
from ftagent.mitigate.protection import Protection
from ftcontract import agent_api

log = logging.getLogger("ftagent.agent")


def operator_rule(target: IPNetwork) -> RuleSpec:
    """A host becomes an exact-source rule, a shorter prefix a prefix rule."""
    return RuleSpec(kind="src" if target.num_addresses == 1 else "prefix", network=target)


def apply_command(
    cmd: agent_api.RuleCommand, datapath: Datapath, protection: Protection
) -> agent_api.CommandAck:
    """Apply one command; the ack says why when it was not applied."""
    try:
        net = ipaddress.ip_network(cmd.target, strict=False)
    except ValueError:
        return agent_api.CommandAck(id=cmd.id, ok=False, error=f"not an address: {cmd.target}")
    spec = operator_rule(net)
    try:
        if cmd.action == "block":
            reason = protection.reason_for(net)
            if reason is not None:
                return agent_api.CommandAck(
                    id=cmd.id, ok=False, error=f"{net} is protected ({reason})"
                )
            datapath.add_rule(spec, cmd.ttl_s)
            log.info("operator rule %s: block %s for %.0f s", cmd.id, net, cmd.ttl_s)
            return agent_api.CommandAck(id=cmd.id, ok=True)
        removed = datapath.remove_rule(spec)
        log.info("operator rule %s: unblock %s", cmd.id, net)
        return agent_api.CommandAck(id=cmd.id, ok=True, error="" if removed else "was not blocked")
    except Exception as exc:  # a full rule map or a kernel error: tell the operator
        return agent_api.CommandAck(id=cmd.id, ok=False, error=f"{type(exc).__name__}: {exc}")
