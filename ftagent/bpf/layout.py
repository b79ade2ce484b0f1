"""Map layouts as data: exported from bcc's generated ctypes by the compiling process,
read back by the agent, which rebuilds the same ctypes from them.

bcc derives each map's key and value types from bpf/ftshared.h when it compiles; the
compiling process (ftagent.bpf.compile) describes those types here (field names, offsets,
sizes, nesting) and stores the description with the pins (the `manifest` map). The agent
never holds a second, hand-written copy: `build()` turns a description back into a ctypes
type and checks that every offset and size came out as described.
"""

from __future__ import annotations

import ctypes as ct
from typing import Any, Literal

import msgspec

# Bumped when the manifest's shape or what it covers changes: older pins are rebuilt.
FORMAT = 1

Kind = Literal["int", "char", "array", "struct", "union"]

_INTS: dict[tuple[int, bool], Any] = {
    (1, False): ct.c_uint8, (1, True): ct.c_int8,
    (2, False): ct.c_uint16, (2, True): ct.c_int16,
    (4, False): ct.c_uint32, (4, True): ct.c_int32,
    (8, False): ct.c_uint64, (8, True): ct.c_int64,
}  # fmt: skip


class LayoutError(ValueError):
    """A type that cannot be described, or a description that does not rebuild as said."""


class TypeDesc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One C type: an integer, an array of `elem`, or a struct/union of `fields`."""

    kind: Kind
    size: int
    signed: bool = False
    elem: TypeDesc | None = None
    length: int = 0
    name: str = ""
    packed: bool = False
    fields: tuple[FieldDesc, ...] = ()


class FieldDesc(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: str
    offset: int
    type: TypeDesc


class MapLayout(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One pinned map: what the kernel reports for it, and its key/value types (None for
    buffers whose records are not keyed values: the sample ring buffer)."""

    name: str
    map_type: int
    key_size: int
    value_size: int
    max_entries: int
    per_cpu: bool
    key: TypeDesc | None
    value: TypeDesc | None


def describe(ctype: Any) -> TypeDesc:
    """The description of a ctypes type as bcc generates them."""
    size = ct.sizeof(ctype)
    if isinstance(ctype, type) and issubclass(ctype, ct.Array):
        elem: Any = ctype._type_
        return TypeDesc("array", size, elem=describe(elem), length=size // ct.sizeof(elem))
    if isinstance(ctype, type) and issubclass(ctype, (ct.Structure, ct.Union)):
        fields: list[FieldDesc] = []
        for spec in ctype._fields_:
            if len(spec) != 2:
                raise LayoutError(f"{ctype.__name__}.{spec[0]}: bit fields are not supported")
            name, ftype = spec
            fields.append(FieldDesc(name, getattr(ctype, name).offset, describe(ftype)))
        kind: Kind = "union" if issubclass(ctype, ct.Union) else "struct"
        return TypeDesc(kind, size, name=ctype.__name__,
                        packed=getattr(ctype, "_pack_", 0) == 1, fields=tuple(fields))
    if ctype is ct.c_char:
        return TypeDesc("char", 1)
    for (isize, signed), itype in _INTS.items():
        if ct.sizeof(itype) == size and _is_int(ctype) and _signed(ctype) == signed:
            return TypeDesc("int", isize, signed=signed)
    raise LayoutError(f"cannot describe ctypes type {ctype!r}")


def _is_int(ctype: Any) -> bool:
    return isinstance(ctype, type) and issubclass(ctype, ct._SimpleCData) and \
        getattr(ctype, "_type_", "") in "bBhHiIlLqQ"


def _signed(ctype: Any) -> bool:
    return bool(ctype(-1).value < 0)


def build(desc: TypeDesc) -> Any:
    """The ctypes type `desc` describes; LayoutError when it does not come out the same."""
    if desc.kind == "char":
        built: Any = ct.c_char
    elif desc.kind == "int":
        try:
            built = _INTS[(desc.size, desc.signed)]
        except KeyError:
            raise LayoutError(f"no {desc.size}-byte integer type") from None
    elif desc.kind == "array":
        if desc.elem is None:
            raise LayoutError("an array without an element type")
        built = build(desc.elem) * desc.length
    else:
        base = ct.Union if desc.kind == "union" else ct.Structure
        attrs: dict[str, Any] = {"_fields_": [(f.name, build(f.type)) for f in desc.fields]}
        if desc.packed:
            attrs["_pack_"] = 1
        built = type(desc.name or "anon", (base,), attrs)
        for f in desc.fields:
            if getattr(built, f.name).offset != f.offset:
                raise LayoutError(f"{desc.name}.{f.name}: offset {getattr(built, f.name).offset}"
                                  f" rebuilt, {f.offset} described")
    if ct.sizeof(built) != desc.size:
        raise LayoutError(f"{desc.name or desc.kind}: size {ct.sizeof(built)} rebuilt, "
                          f"{desc.size} described")
    return built
