"""Authentication, in one place: both credentials the control plane accepts.

- Deploy token (workspace): `Authorization: Bearer <token>` on the Deploy API and REST
  API v1, checked by `DeployTokenMiddleware`; `provide_caller` injects the workspace.
  Paths that authenticate differently or not at all are excluded from it: the Agent API,
  health, the OpenAPI schema and /metrics.
- Node API key (Agent API): `Authorization: Bearer <node api_key>` plus `X-Node-UUID`.
  Every request looks the key up again (`authenticate_node`: one indexed query, stored
  SHA-256 and UUID compared), so a deleted node's key stops working with the very next
  request; there is no cache to go stale. Any mismatch is a 401 with the same reason, so
  a caller cannot tell a wrong key from a wrong UUID. `node_guard` checks the credentials
  before Litestar reads and decodes the request body (guards run first; dependencies only
  after the body), so an unauthenticated client cannot make the server take in a 4 MiB
  JSON body or a 32 MiB pcap upload. It leaves the node on the connection's state, where
  `provide_node` picks it up.
"""

from __future__ import annotations

import aiosqlite
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from control.core.errors import Unauthorized
from control.core.security import bearer_token
from control.nodes.service import NodeCaller, authenticate_node
from control.workspace.service import Caller, authenticate

# ---- deploy token (workspace) ---------------------------------------------------------

BEARER = "DeployToken"  # the OpenAPI security scheme name
# The dashboard (its pages and /api/dash/*) authenticates with sessions: control.dashboard.
EXCLUDED_PATHS = [
    "^/api/v1/agent/",
    "^/api/health",
    "^/schema",
    "^/metrics",
    "^/api/dash/",
    "^/dash",
    "^/$",  # redirects a browser to /dash
    # the node installer and its wheel: public (the deploy token travels in the node's env)
    "^/install.sh$",
    "^/install/",
]
DEPLOY_AUTH_REASON = "missing deploy token (Authorization: Bearer <token>)"


class DeployTokenMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, exclude=EXCLUDED_PATHS)

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        token = bearer_token(connection.headers.get("authorization"))
        if token is None:
            raise Unauthorized(DEPLOY_AUTH_REASON)
        db: aiosqlite.Connection = connection.app.state.db
        caller = await authenticate(db, token)
        return AuthenticationResult(user=caller, auth=token)


def provide_caller(request: Request) -> Caller:  # type: ignore[type-arg]
    """Dependency: the workspace the middleware authenticated."""
    user = request.scope.get("user")
    if not isinstance(user, Caller):
        raise Unauthorized(DEPLOY_AUTH_REASON)
    return user


# ---- node API key (Agent API) ---------------------------------------------------------

NODE_REASON = "invalid node credentials (Authorization: Bearer <node api_key> and X-Node-UUID)"
_NODE_STATE_KEY = "agentapi_node"


async def _authenticate_node(connection: ASGIConnection) -> NodeCaller:  # type: ignore[type-arg]
    key = bearer_token(connection.headers.get("authorization"))
    node_uuid = (connection.headers.get("x-node-uuid") or "").strip()
    if key is None or not node_uuid:
        raise Unauthorized(NODE_REASON)
    db: aiosqlite.Connection = connection.app.state.db
    try:
        return await authenticate_node(db, key, node_uuid)
    except Unauthorized as exc:
        raise Unauthorized(NODE_REASON) from exc


async def node_guard(connection: ASGIConnection, _: BaseRouteHandler) -> None:  # type: ignore[type-arg]
    connection.state[_NODE_STATE_KEY] = await _authenticate_node(connection)


async def provide_node(request: Request) -> NodeCaller:  # type: ignore[type-arg]
    node = request.state.get(_NODE_STATE_KEY)
    if isinstance(node, NodeCaller):
        return node
    return await _authenticate_node(request)  # a route without the guard
