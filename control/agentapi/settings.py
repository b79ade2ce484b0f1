"""Settings of the Agent API side of the control plane, from the environment.

`ftcontrol serve` takes no flags for these; every one has a default and an environment
variable (documented in the README). Tests put their own `AgentApiSettings` on
`app.state.agentapi_settings` before the app starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PCAP_MAX_BYTES_DEFAULT = 8 * 1024 * 1024


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{name}: {raw!r} is not a number") from exc
    if value <= 0:
        raise ValueError(f"{name}: must be positive")
    return value


@dataclass(frozen=True, slots=True)
class AgentApiSettings:
    # Where pcaps are stored (<data_dir>/pcap/<incident uuid>.pcap); empty: next to the db.
    data_dir: str = ""
    pcap_max_bytes: int = PCAP_MAX_BYTES_DEFAULT
    raw_retention_s: float = 3600.0
    rollup_retention_s: float = 90 * 86400.0
    prune_interval_s: float = 60.0
    # Metric points are written as they come, each transaction taking every post that
    # arrived during the previous one (group commit); with no posts, the writer still
    # wakes this often (and writes at shutdown).
    flush_interval_s: float = 0.2
    # Dirty one-minute roll-ups are recomputed from the raw points this often.
    rollup_interval_s: float = 5.0
    # Per-node Prometheus gauges are refreshed from the store this often.
    gauges_interval_s: float = 2.0
    # At most this many points in one POST metrics (an agent replaying a long outage
    # sends several batches).
    max_points_per_post: int = 3600
    # Accepted points not yet written; above this, POST metrics answers 503 (retry later).
    max_buffered_points: int = 200_000

    @classmethod
    def from_env(cls) -> AgentApiSettings:
        return cls(
            data_dir=os.environ.get("FTCONTROL_DATA_DIR", ""),
            pcap_max_bytes=int(
                _env_float("FTCONTROL_PCAP_MAX_BYTES", float(PCAP_MAX_BYTES_DEFAULT))
            ),
            raw_retention_s=_env_float("FTCONTROL_RAW_RETENTION_S", 3600.0),
            rollup_retention_s=_env_float("FTCONTROL_ROLLUP_RETENTION_S", 90 * 86400.0),
            prune_interval_s=_env_float("FTCONTROL_PRUNE_INTERVAL_S", 60.0),
            gauges_interval_s=_env_float("FTCONTROL_GAUGES_INTERVAL_S", 2.0),
        )

    def resolve_data_dir(self, db_file: str) -> Path:
        if self.data_dir:
            return Path(self.data_dir)
        if not db_file:  # in-memory database
            return Path(os.environ.get("TMPDIR", "/tmp")) / "ftcontrol-data"  # noqa: S108
        db = Path(db_file)
        return db.with_name(db.stem + "-data")
