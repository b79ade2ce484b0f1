"""Limits on values, checked when a message or a config file is decoded.

The text limits are far above what a real agent sends (top sources <= 1,000 and rules
<= 10,000 by its config), so a bad or hostile node cannot grow a row or a message without
bound; over a limit, the decoder names the field. The setting limits are the same whether
a value comes from the agent's TOML or from the control plane's overrides.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

Name = Annotated[str, msgspec.Meta(max_length=64)]  # family, version, class names ...
Text = Annotated[str, msgspec.Meta(max_length=1024)]  # human text (rule match, errors)
Address = Annotated[str, msgspec.Meta(max_length=64)]  # an address or prefix
Shares = Annotated[dict[Name, float], msgspec.Meta(max_length=32)]
Uuid = Annotated[str, msgspec.Meta(pattern="^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")]

# Numbers stored by the control plane: SQLite integers are 64-bit, and a time must be a
# date (up to the end of year 9999) for the control plane to show it.
Count = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
UnixTime = Annotated[float, msgspec.Meta(ge=0, le=253_402_300_799)]
Rate = Annotated[float, msgspec.Meta(ge=0, le=1e15)]  # per second: far above any link
Port = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Byte = Annotated[int, msgspec.Meta(ge=0, le=255)]  # protocol number, TCP flags

MAX_TOP_SOURCES = 1000
MAX_RULES = 10_000
MAX_ALLOWLIST = 10_000
MAX_EVIDENCE_KEYS = 64

# Detection and mitigation settings (agent config and control-plane overrides alike).
Positive = Annotated[float, msgspec.Meta(gt=0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0)]
# threshold = max(floor, multiplier x baseline p99): below 1 it would sit under normal traffic
Multiplier = Annotated[float, msgspec.Meta(ge=1)]
BurstFactor = Annotated[float, msgspec.Meta(ge=1)]
ConfirmWindows = Annotated[int, msgspec.Meta(ge=1, le=100)]
MAX_RULE_TTL_S = 7 * 86400.0
RuleTtl = Annotated[float, msgspec.Meta(gt=0, le=MAX_RULE_TTL_S)]
IdleSamples = Annotated[int, msgspec.Meta(ge=0)]
AttackSamples = Annotated[int, msgspec.Meta(ge=1)]
