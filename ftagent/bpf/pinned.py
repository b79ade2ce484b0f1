"""The running agent's maps, opened from their pins (for `ftagent rules|block|unblock`).

The agent (XdpDatapath.open) pins its maps under /sys/fs/bpf/ftagent/<ifname>/ and
removes them on a clean detach. `open_pinned(ifname)` compiles bpf/ftview.c (maps only,
no program) with bcc's pinned-table form, so the command line gets the same generated
Key/Leaf types as the agent, and returns a `DatapathMaps` over those maps. Changes take
effect in the running XDP program at once.
"""

from __future__ import annotations

from pathlib import Path

from ftagent.bpf.headers import DEFAULT_CACHE_DIR
from ftagent.bpf.loader import DEFAULT_PIN_ROOT, PINNED_MAPS
from ftagent.bpf.maps import DatapathMaps
from ftagent.bpf.program import compile_view


class NoAgentError(RuntimeError):
    """No agent has its maps pinned for this interface."""


def pin_path(interface: str, pin_root: Path = DEFAULT_PIN_ROOT) -> Path:
    if not interface or "/" in interface or interface in (".", ".."):
        raise ValueError(f"bad interface name {interface!r}")
    return pin_root / interface


def open_pinned(interface: str, *, pin_root: Path = DEFAULT_PIN_ROOT,
                header_cache_dir: Path = DEFAULT_CACHE_DIR) -> DatapathMaps:
    path = pin_path(interface, pin_root)
    missing = [name for name in PINNED_MAPS if not (path / name).exists()]
    if missing:
        raise NoAgentError(
            f"no running agent on {interface}: {path} lacks pinned maps "
            f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}); is `ftagent run` "
            "attached to this interface?"
        )
    bpf = compile_view(path, header_cache_dir=header_cache_dir)
    return DatapathMaps(bpf, with_samples=False)
