"""GET /api/health: liveness and store reachability, no authentication."""

from __future__ import annotations

import msgspec
from litestar import Response, get

from control.core.deps import Db


class Health(msgspec.Struct, kw_only=True):
    status: str  # "ok", or "error" when the database does not answer


@get("/api/health", tags=["health"], summary="Health check (no authentication)")
async def health(db: Db) -> Response[Health]:
    try:
        async with db.execute("SELECT 1") as cur:
            await cur.fetchone()
    except Exception:  # any store failure means "not healthy"; the status says so
        return Response(Health(status="error"), status_code=503)
    return Response(Health(status="ok"), status_code=200)
