"""Deploy-token authentication for the Deploy API and REST API v1, in one middleware.

Paths that authenticate differently or not at all are excluded here: the Agent API
(node API keys, checked by its own guard), health, the OpenAPI schema and /metrics.
"""

from __future__ import annotations

import aiosqlite
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from control.errors import Unauthorized
from control.security import bearer_token
from control.services.workspaces import Caller, authenticate

BEARER = "DeployToken"  # the OpenAPI security scheme name
EXCLUDED_PATHS = [
    "^/api/v1/agent/",
    "^/api/health",
    "^/schema",
    "^/metrics",
    "^/install.sh$",
    "^/install/",
]


class DeployTokenMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, exclude=EXCLUDED_PATHS)

    async def authenticate_request(self, connection: ASGIConnection) -> AuthenticationResult:  # type: ignore[type-arg]
        token = bearer_token(connection.headers.get("authorization"))
        if token is None:
            raise Unauthorized("missing deploy token (Authorization: Bearer <token>)")
        db: aiosqlite.Connection = connection.app.state.db
        caller = await authenticate(db, token)
        return AuthenticationResult(user=caller, auth=token)


def provide_caller(request: Request) -> Caller:  # type: ignore[type-arg]
    """Dependency: the workspace the middleware authenticated."""
    user = request.scope.get("user")
    if not isinstance(user, Caller):
        raise Unauthorized("missing deploy token (Authorization: Bearer <token>)")
    return user
