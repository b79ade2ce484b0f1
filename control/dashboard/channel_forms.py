"""The channel create form per type, derived from the notification config structs.

The page builds its inputs from this (one source of truth: a new config key shows up in
the form), and the API validates what it sends exactly as for any REST client.
"""

from __future__ import annotations

from typing import Literal

import msgspec
import msgspec.inspect as mi

from control.notify.config import CONFIG_STRUCTS, SECRET_KEYS

FieldKind = Literal["text", "number", "select", "list", "json"]


class FormField(msgspec.Struct, kw_only=True):
    name: str  # the config key as sent (e.g. "from")
    kind: FieldKind  # list: comma-separated strings; json: a JSON value
    required: bool
    secret: bool
    options: list[str] = []
    default: str | None = None  # shown as the placeholder


class ChannelForm(msgspec.Struct, kw_only=True):
    type: str
    fields: list[FormField]


def _kind(t: mi.Type) -> tuple[FieldKind, list[str]]:
    if isinstance(t, mi.UnionType):
        rest = [a for a in t.types if not isinstance(a, mi.NoneType)]
        if len(rest) == 1:
            return _kind(rest[0])
        return ("text", [])  # str | int (a chat id): sent as text
    if isinstance(t, mi.StrType):
        return ("text", [])
    if isinstance(t, mi.IntType | mi.FloatType):
        return ("number", [])
    if isinstance(t, mi.LiteralType):
        return ("select", [str(v) for v in t.values])
    if isinstance(t, mi.ListType) and isinstance(t.item_type, mi.StrType):
        return ("list", [])
    return ("json", [])


def _default(field: mi.Field) -> str | None:
    if field.required or field.default is None or field.default is msgspec.NODEFAULT:
        return None
    return msgspec.json.encode(field.default).decode().strip('"')


def channel_forms() -> list[ChannelForm]:
    forms = []
    for type_name, struct in CONFIG_STRUCTS.items():
        info = mi.type_info(struct)
        assert isinstance(info, mi.StructType)
        fields = []
        for f in info.fields:
            kind, options = _kind(f.type)
            fields.append(
                FormField(
                    name=f.encode_name,
                    kind=kind,
                    required=f.required,
                    secret=f.encode_name in SECRET_KEYS.get(type_name, ()),
                    options=options,
                    default=_default(f),
                )
            )
        # required keys first, the common filters (min_severity, nodes) last
        fields.sort(key=lambda f: (not f.required, f.name in ("min_severity", "nodes")))
        forms.append(ChannelForm(type=type_name, fields=fields))
    return forms
