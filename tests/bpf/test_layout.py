"""The header's index constants and bcc's generated layouts agree with ftagent/datapath.py,
and the layouts the agent rebuilds from the pinned manifest are bcc's, field by field."""

from __future__ import annotations

import ctypes as ct
import os
import re
from typing import Any

import pytest

from ftagent.bpf.program import HEADER
from ftagent.datapath import (
    AMP_PORT_NAMES,
    AMP_PORTS,
    CLASSES,
    SIZE_BOUNDS,
    SIZE_BUCKETS,
    TCP_FLAG_CLASSES,
    VERDICTS,
)

from .conftest import Prog


def defines(prefix: str) -> dict[str, int]:
    text = HEADER.read_text()
    return {
        m.group(1): int(m.group(2))
        for m in re.finditer(rf"#define\s+{prefix}(\w+)\s+(\d+)\b", text)
    }


@pytest.mark.parametrize(
    ("prefix", "names", "count"),
    [
        ("FT_CLS_", CLASSES, "FT_NUM_CLASSES"),
        ("FT_TCPF_", TCP_FLAG_CLASSES, "FT_NUM_TCPF"),
        ("FT_AMP_", AMP_PORT_NAMES, "FT_NUM_AMP"),
        ("FT_SIZE_", SIZE_BUCKETS, "FT_NUM_SIZES"),
        ("FT_V_", VERDICTS, "FT_NUM_VERDICTS"),
    ],
)
def test_index_constants_match_names(prefix: str, names: tuple[str, ...], count: str) -> None:
    found = defines(prefix)
    by_index = sorted(found.items(), key=lambda kv: kv[1])
    assert [i for _, i in by_index] == list(range(len(names)))
    normalized = [n.lower() for n, _ in by_index]
    assert normalized == [n.lower() for n in names]
    assert defines("")[count] == len(names)


def test_amp_ports_and_size_bounds_in_header() -> None:
    amp = defines("FT_AMP_")
    assert [int(k) for k in amp if k.isdigit()] == list(AMP_PORTS)
    sizes = defines("FT_SIZE_LE_")
    assert [int(k) for k in sizes] == list(SIZE_BOUNDS)


@pytest.mark.kernel
def test_generated_leaf_arrays_have_one_slot_per_name(prog: Prog) -> None:
    leaf = prog.maps.tables["stats"].sLeaf  # struct ft_stats as the agent rebuilds it
    fields = dict(leaf._fields_)
    assert fields["class_packets"]._length_ == len(CLASSES)
    assert fields["tcp_flags"]._length_ == len(TCP_FLAG_CLASSES)
    assert fields["udp_port_packets"]._length_ == len(AMP_PORT_NAMES)
    assert fields["sizes"]._length_ == len(SIZE_BUCKETS)
    assert fields["verdict_packets"]._length_ == len(VERDICTS)


def test_rule_bits_match_header() -> None:
    from ftagent.bpf import rule_spec as maps

    sig = {k: int(v, 16) for k, v in re.findall(
        r"#define\s+FT_SIG_(\w+)\s+(0x[0-9a-fA-F]+)", HEADER.read_text())}
    assert sig == {"SPORT": maps.SIG_MATCH_SPORT, "DPORT": maps.SIG_MATCH_DPORT,
                   "FLAGS": maps.SIG_MATCH_FLAGS, "DST4": maps.SIG_MATCH_DST4,
                   "DST6": maps.SIG_MATCH_DST6, "FRAG": maps.SIG_MATCH_FRAG}
    guard = {k: int(v, 16) for k, v in re.findall(
        r"#define\s+FT_GUARD_(\w+)\s+(0x[0-9a-fA-F]+)", HEADER.read_text())}
    assert guard == {"SOCKET": maps.GUARD_SOCKET, "CONNECTED": maps.GUARD_CONNECTED,
                     "KNOWN": maps.GUARD_KNOWN}


@pytest.mark.kernel
def test_rule_stat_and_sig_rule_carry_spare_fields(prog: Prog) -> None:
    stat = dict(prog.maps.tables["rule_stats"].sLeaf._fields_)
    assert {"packets", "bytes", "spared_packets", "spared_bytes"} <= set(stat)
    assert "guard" in dict(prog.maps.tables["rsig"].Leaf._fields_)


def _fields(ctype: Any) -> list[tuple[str, int, int]]:
    """(dotted name, offset, size) of every field of a ctypes type, nested ones flattened
    (a scalar or an array is one field, named "")."""
    if not (isinstance(ctype, type) and issubclass(ctype, ct.Structure)):
        return [("", 0, ct.sizeof(ctype))]
    out: list[tuple[str, int, int]] = []
    for name, ftype, *_ in ctype._fields_:
        off = getattr(ctype, name).offset
        out += [(f"{name}.{n}" if n else name, off + o, size) for n, o, size in _fields(ftype)]
    return out


@pytest.mark.kernel
def test_pinned_layouts_are_the_compiled_programs(prog: Prog) -> None:
    """What the agent reads and writes (types rebuilt from the manifest pinned with the
    program) has bcc's field names, offsets and sizes for the same program, compiled here
    again, and the kernel's key and value sizes for the pinned maps."""
    from ftagent.bpf import libbpf
    from ftagent.bpf.compile import BUFFER_MAPS, SHARED_MAPS
    from ftagent.bpf.program import compile_xdp

    manifest = prog.maps.tables.manifest
    assert [m.name for m in manifest.maps] == list(SHARED_MAPS)
    bpf = compile_xdp(top_sources_size=manifest.top_sources_size)
    try:
        for name in SHARED_MAPS:
            fd = prog.maps.tables.fd(name)  # a new fd on the pin: the caller closes it
            try:
                pinned = libbpf.fdinfo(fd)
            finally:
                os.close(fd)
            layout = manifest.layout(name)
            assert (int(pinned["key_size"]), int(pinned["value_size"])) == (
                layout.key_size, layout.value_size), name
            if name in BUFFER_MAPS:
                continue
            ours = prog.maps.tables[name]
            theirs = bpf[name.encode()]
            per_cpu = hasattr(theirs, "sLeaf")
            assert _fields(ours.Key) == _fields(theirs.Key), name
            assert _fields(ours.sLeaf) == _fields(theirs.sLeaf if per_cpu else theirs.Leaf), name
            assert ct.sizeof(ours.Key) == layout.key_size, name
            assert ct.sizeof(ours.sLeaf) == layout.value_size, name
    finally:
        bpf.cleanup()


def test_wake_slot_shift_mirrored() -> None:
    from ftagent.bpf.wake import WAKE_SLOT_SHIFT

    assert defines("FT_WAKE_")["SLOT_SHIFT"] == WAKE_SLOT_SHIFT
