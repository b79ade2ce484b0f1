"""Agent API authentication: `Authorization: Bearer <node api_key>` plus `X-Node-UUID`.

Every request looks the key up again (one indexed query, one round trip to the store's
thread), so a deleted node's key stops working with the very next request; there is no
cache to go stale. The stored SHA-256 and the UUID are compared in constant time. Any
mismatch is a 401 with the same reason, so a caller cannot tell a wrong key from a wrong
UUID.
"""

from __future__ import annotations

import hmac

import aiosqlite
from litestar import Request

from control.errors import Unauthorized
from control.security import bearer_token, hash_secret, secret_matches
from control.services.nodes import NodeCaller

REASON = "invalid node credentials (Authorization: Bearer <node api_key> and X-Node-UUID)"
_LOOKUP = (
    "SELECT id, workspace_id, uuid, api_key_hash FROM nodes "
    "WHERE api_key_hash = ? AND deleted_at IS NULL"
)


async def provide_node(request: Request) -> NodeCaller:  # type: ignore[type-arg]
    key = bearer_token(request.headers.get("authorization"))
    node_uuid = (request.headers.get("x-node-uuid") or "").strip()
    if key is None or not node_uuid:
        raise Unauthorized(REASON)
    db: aiosqlite.Connection = request.app.state.db
    rows = list(await db.execute_fetchall(_LOOKUP, (hash_secret(key),)))
    row = rows[0] if rows else None
    if (
        row is None
        or not secret_matches(key, row["api_key_hash"])
        or not hmac.compare_digest(str(row["uuid"]).encode(), node_uuid.encode())
    ):
        raise Unauthorized(REASON)
    return NodeCaller(workspace_id=row["workspace_id"], node_id=row["id"], node_uuid=row["uuid"])
