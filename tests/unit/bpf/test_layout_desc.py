"""Map layouts as data (ftagent.bpf.layout): a ctypes type described the way the compiling
process describes bcc's, through JSON, rebuilds with the same names, offsets and sizes;
a description that does not rebuild as it says is refused."""

from __future__ import annotations

import ctypes as ct

import msgspec
import pytest

from ftagent.bpf.layout import FieldDesc, LayoutError, TypeDesc, build, describe


class Rule(ct.Structure):
    _fields_ = (("expires_ns", ct.c_uint64), ("rate_pps", ct.c_uint32),
                ("stat_idx", ct.c_uint32))


class SigRule(ct.Structure):  # nested struct, byte arrays, padding before a u64 member
    _fields_ = (("rule", Rule), ("proto", ct.c_uint8), ("dst", ct.c_uint8 * 16),
                ("sport", ct.c_uint16), ("repeat", Rule))


class Packed(ct.Structure):
    _pack_ = 1
    _fields_ = (("a", ct.c_uint8), ("b", ct.c_uint32), ("c", ct.c_int16))


def layout_of(ctype: type) -> list[tuple[str, int, int]]:
    return [(name, getattr(ctype, name).offset, getattr(ctype, name).size)
            for name, *_ in ctype._fields_]  # type: ignore[attr-defined]


@pytest.mark.parametrize("ctype", [SigRule, Packed, ct.c_uint32, ct.c_int64, ct.c_uint8 * 16])
def test_description_survives_json_and_rebuilds_the_same(ctype: type) -> None:
    desc = describe(ctype)
    again = msgspec.json.decode(msgspec.json.encode(desc), type=TypeDesc)
    assert again == desc
    built = build(again)
    assert ct.sizeof(built) == ct.sizeof(ctype)
    assert describe(built) == desc
    if issubclass(ctype, ct.Structure):
        assert layout_of(built) == layout_of(ctype)


def test_nested_fields_keep_their_names_and_offsets() -> None:
    built = build(describe(SigRule))
    value = built()
    value.rule.expires_ns = 7
    value.dst[15] = 9
    value.repeat.rate_pps = 3
    raw = bytes(value)
    assert SigRule.from_buffer_copy(raw).rule.expires_ns == 7
    assert SigRule.from_buffer_copy(raw).dst[15] == 9
    assert SigRule.from_buffer_copy(raw).repeat.rate_pps == 3


def test_a_description_that_does_not_rebuild_as_it_says_is_refused() -> None:
    u32 = TypeDesc("int", 4)
    wrong_offset = TypeDesc("struct", 8, name="s", fields=(
        FieldDesc("a", 0, u32), FieldDesc("b", 2, u32)))
    with pytest.raises(LayoutError, match="offset"):
        build(wrong_offset)
    wrong_size = TypeDesc("struct", 16, name="s", fields=(FieldDesc("a", 0, u32),))
    with pytest.raises(LayoutError, match="size"):
        build(wrong_size)


def test_bit_fields_cannot_be_described() -> None:
    class Bits(ct.Structure):
        _fields_ = (("a", ct.c_uint32, 3),)

    with pytest.raises(LayoutError, match="bit fields"):
        describe(Bits)
