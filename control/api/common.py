"""Small response envelopes shared by several resources."""

from __future__ import annotations

import msgspec


class Ok(msgspec.Struct, kw_only=True):
    ok: bool
