"""Agent API authentication: `Authorization: Bearer <node api_key>` plus `X-Node-UUID`.

Every request looks the key up again (control.services.nodes.authenticate_node: one
indexed query, stored SHA-256 and UUID compared), so a deleted node's key stops working
with the very next request; there is no cache to go stale. Any mismatch is a 401 with the
same reason, so a caller cannot tell a wrong key from a wrong UUID.

`node_guard` checks the credentials before Litestar reads and decodes the request body
(guards run first; dependencies only after the body), so an unauthenticated client
cannot make the server take in a 4 MiB JSON body or a 32 MiB pcap upload. It leaves the
node on the connection's state, where `provide_node` picks it up.
"""

from __future__ import annotations

import aiosqlite
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from control.errors import Unauthorized
from control.security import bearer_token
from control.services.nodes import NodeCaller, authenticate_node

REASON = "invalid node credentials (Authorization: Bearer <node api_key> and X-Node-UUID)"


_STATE_KEY = "agentapi_node"


async def _authenticate(connection: ASGIConnection) -> NodeCaller:  # type: ignore[type-arg]
    key = bearer_token(connection.headers.get("authorization"))
    node_uuid = (connection.headers.get("x-node-uuid") or "").strip()
    if key is None or not node_uuid:
        raise Unauthorized(REASON)
    db: aiosqlite.Connection = connection.app.state.db
    try:
        return await authenticate_node(db, key, node_uuid)
    except Unauthorized as exc:
        raise Unauthorized(REASON) from exc


async def node_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    connection.state[_STATE_KEY] = await _authenticate(connection)


async def provide_node(request: Request) -> NodeCaller:  # type: ignore[type-arg]
    node = request.state.get(_STATE_KEY)
    if isinstance(node, NodeCaller):
        return node
    return await _authenticate(request)  # a route without the guard
