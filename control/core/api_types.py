"""Small response envelopes shared by several resources."""

from __future__ import annotations

from typing import Annotated, TypeAlias

import msgspec
from litestar.params import PathParameter


class Ok(msgspec.Struct, kw_only=True):
    ok: bool


class ErrorBody(msgspec.Struct, kw_only=True, omit_defaults=True):
    """Every error response: `ok` is false, `error` the reason, `field` the input at fault
    (left out when no single input is)."""

    ok: bool
    error: str
    field: str | None = None


# SQLite integers are signed 64-bit: a larger id names no row and could not even be bound.
SQLITE_INT_MAX = 2**63 - 1
RowId: TypeAlias = Annotated[int, PathParameter(ge=1, le=SQLITE_INT_MAX)]
