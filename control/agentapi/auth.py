"""Agent API authentication: `Authorization: Bearer <node api_key>` plus `X-Node-UUID`.

Every request looks the key up again (control.services.nodes.authenticate_node: one
indexed query, stored SHA-256 and UUID compared), so a deleted node's key stops working
with the very next request; there is no cache to go stale. Any mismatch is a 401 with the
same reason, so a caller cannot tell a wrong key from a wrong UUID.
"""

from __future__ import annotations

import aiosqlite
from litestar import Request

from control.errors import Unauthorized
from control.security import bearer_token
from control.services.nodes import NodeCaller, authenticate_node

REASON = "invalid node credentials (Authorization: Bearer <node api_key> and X-Node-UUID)"


async def provide_node(request: Request) -> NodeCaller:  # type: ignore[type-arg]
    key = bearer_token(request.headers.get("authorization"))
    node_uuid = (request.headers.get("x-node-uuid") or "").strip()
    if key is None or not node_uuid:
        raise Unauthorized(REASON)
    db: aiosqlite.Connection = request.app.state.db
    try:
        return await authenticate_node(db, key, node_uuid)
    except Unauthorized as exc:
        raise Unauthorized(REASON) from exc
