"""Is a node's agent older than this control plane (and the wheel it serves)?"""

from __future__ import annotations

import re

from control import __version__ as CONTROL_VERSION

_RELEASE = re.compile(r"^(\d+(?:\.\d+)*)")


def _release(version: str) -> tuple[int, ...] | None:
    """The numeric release part ("0.1.0rc1" -> (0, 1, 0)); None if there is none."""
    found = _RELEASE.match(version.strip())
    if not found:
        return None
    parts = [int(p) for p in found.group(1).split(".")]
    while len(parts) > 1 and parts[-1] == 0:  # 0.1 == 0.1.0
        parts.pop()
    return tuple(parts)


def agent_outdated(
    agent_version: str | None, control_version: str = CONTROL_VERSION
) -> bool | None:
    """True when the agent's release is older than the control plane's, False when not,
    None when unknown (no heartbeat yet, or a version we cannot read)."""
    if agent_version is None:
        return None
    agent, control = _release(agent_version), _release(control_version)
    if agent is None or control is None:
        return None
    return agent < control
