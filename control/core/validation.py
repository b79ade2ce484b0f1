"""Checks and normalisation of user-supplied values; each failure names its field."""

from __future__ import annotations

import ipaddress
import math
import re

from control.core.errors import InvalidValue

NAME_MAX = 100
LABEL_MAX = 100
# Linux interface names: 1-15 bytes, no '/', ':' or whitespace.
_IFNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,15}$")


def required_text(field: str, value: str | None, *, max_len: int) -> str:
    text = (value or "").strip()
    if not text:
        raise InvalidValue(field, "required")
    if len(text) > max_len:
        raise InvalidValue(field, f"at most {max_len} characters")
    return text


def optional_text(field: str, value: str | None, *, max_len: int = LABEL_MAX) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > max_len:
        raise InvalidValue(field, f"at most {max_len} characters")
    return text or None


def node_name(value: str | None) -> str:
    return required_text("name", value, max_len=NAME_MAX)


def ip_address(value: str | None, field: str = "ip") -> str:
    """A valid IPv4 or IPv6 address in its canonical text form ('2001:DB8::01' -> '2001:db8::1')."""
    text = (value or "").strip()
    if not text:
        raise InvalidValue(field, "required")
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise InvalidValue(field, f"not an IPv4 or IPv6 address: {text[:64]!r}") from None


# 10 Tbit/s: far above any single uplink, and a finite bound for the arithmetic.
UPLINK_MBPS_MAX = 10_000_000.0


def uplink_mbps(value: float | None) -> float | None:
    """A node's uplink capacity in Mbit/s: above 0 and finite, or None (not declared)."""
    if value is None:
        return None
    if not (math.isfinite(value) and 0 < value <= UPLINK_MBPS_MAX):
        raise InvalidValue("uplink_mbps", f"must be above 0 and at most {UPLINK_MBPS_MAX:.0f}")
    return float(value)


def interface_name(value: str | None) -> str:
    text = (value or "").strip()
    if not _IFNAME.match(text):
        raise InvalidValue("interface", "1-15 characters of letters, digits, '_', '.', '@', '-'")
    return text


# Far past any real list, and well inside SQLite's signed 64-bit integers.
MAX_OFFSET = 1_000_000_000


def page(limit: int, offset: int, *, max_limit: int = 100) -> tuple[int, int]:
    if not 1 <= limit <= max_limit:
        raise InvalidValue("limit", f"must be between 1 and {max_limit}")
    if offset < 0:
        raise InvalidValue("offset", "must not be negative")
    if offset > MAX_OFFSET:
        raise InvalidValue("offset", f"at most {MAX_OFFSET}")
    return limit, offset
