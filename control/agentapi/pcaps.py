"""Incident pcaps: uploaded by the node's agent, stored under the data directory with
their SHA-256, downloaded by the workspace through the REST API.

Files live at <data_dir>/pcap/<incident uuid>.pcap (mode 0600, written to a temporary
name and renamed, so a reader never sees half a file). A second upload for the same
incident replaces the first (the agent may send a longer capture later).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
import anyio

from control.core import clock
from control.core.db import transaction
from control.core.errors import InvalidValue, NotFound

# Classic pcap (both byte orders, micro- and nanosecond) and pcapng section header.
PCAP_MAGICS = (
    b"\xd4\xc3\xb2\xa1",
    b"\xa1\xb2\xc3\xd4",
    b"\x4d\x3c\xb2\xa1",
    b"\xa1\xb2\x3c\x4d",
    b"\x0a\x0d\x0d\x0a",
)


@dataclass(frozen=True, slots=True)
class StoredPcap:
    path: Path
    sha256: str
    size: int
    uploaded_at: float


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class PcapStore:
    def __init__(self, db: aiosqlite.Connection, data_dir: Path, max_bytes: int) -> None:
        self.db = db
        self.data_dir = data_dir
        self.max_bytes = max_bytes

    async def store(self, incident_id: int, incident_uuid: str, data: bytes) -> StoredPcap:
        if len(data) > self.max_bytes:
            raise InvalidValue("file", f"larger than the {self.max_bytes} byte limit")
        if len(data) < 24 or data[:4] not in PCAP_MAGICS:
            raise InvalidValue("file", "not a pcap or pcapng file")
        digest = hashlib.sha256(data).hexdigest()
        relative = Path("pcap") / f"{incident_uuid}.pcap"
        await anyio.to_thread.run_sync(_write, self.data_dir / relative, data)
        now = clock.now()
        async with transaction(self.db) as db:
            await db.execute(
                """INSERT INTO incident_pcaps (incident_id, file, sha256, size, uploaded_at)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (incident_id) DO UPDATE SET file = excluded.file,
                       sha256 = excluded.sha256, size = excluded.size,
                       uploaded_at = excluded.uploaded_at""",
                (incident_id, str(relative), digest, len(data), now),
            )
        return StoredPcap(self.data_dir / relative, digest, len(data), now)

    async def find(self, workspace_id: int, incident_uuid: str) -> StoredPcap:
        rows = list(
            await self.db.execute_fetchall(
                """SELECT p.file, p.sha256, p.size, p.uploaded_at FROM incident_pcaps p
                   JOIN incidents i ON i.id = p.incident_id
                   WHERE i.workspace_id = ? AND i.uuid = ?""",
                (workspace_id, incident_uuid),
            )
        )
        if not rows:
            raise NotFound("no pcap for this incident")
        path = self.data_dir / rows[0]["file"]
        if not path.is_file():
            raise NotFound("the pcap file is missing from the data directory")
        return StoredPcap(path, rows[0]["sha256"], rows[0]["size"], rows[0]["uploaded_at"])
