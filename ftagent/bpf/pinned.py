"""The running agent's maps, opened from their pins (for `ftagent rules|block|unblock`).

The agent (XdpDatapath.open) pins its program and maps under
/sys/fs/bpf/ftagent/<ifname>/ with a manifest of their layouts; `open_pinned(ifname)`
opens them by path (no compiling) and returns a `DatapathMaps` over them. Changes take
effect in the running XDP program at once.
"""

from __future__ import annotations

from pathlib import Path

from ftagent.bpf import pins
from ftagent.bpf.maps import DatapathMaps
from ftagent.bpf.pins import DEFAULT_PIN_ROOT
from ftagent.bpf.tables import Tables


class NoAgentError(RuntimeError):
    """No agent has its maps pinned for this interface."""


def open_pinned(interface: str, *, pin_root: Path = DEFAULT_PIN_ROOT) -> DatapathMaps:
    path = pins.pin_dir(interface, pin_root)
    if not pins.is_locked(path):
        raise NoAgentError(
            f"no running agent on {interface}: nothing holds {path}; is `ftagent run` "
            "attached to this interface?"
        )
    manifest = pins.read_manifest(path)
    why = pins.check(path, manifest, manifest.source_hash if manifest else "")
    if manifest is None or why:
        raise NoAgentError(f"the pins in {path} cannot be used ({why}); is the agent "
                           "still starting?")
    return DatapathMaps(Tables(path, manifest), with_samples=False)
