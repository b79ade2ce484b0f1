"""Session authentication for /api/dash/*: the session cookie, CSRF and roles.

The middleware turns the session cookie into the request's user: a `Caller` of the
session's workspace (so the REST API v1 handlers mounted under /api/dash scope every query
exactly as they do for a deploy token), with the `DashSession` as `request.auth`.
The guard then asks, for every state-changing request, the session's CSRF token in the
X-CSRF-Token header (synchronizer token: the browser cannot be made to send it
cross-site) and the admin role, unless the handler says viewers may (`opt`).
"""

from __future__ import annotations

from typing import Any

import aiosqlite
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from control.core.errors import DomainError, Unauthorized
from control.dashboard.sessions import DashSession, find_session
from control.dashboard.settings import DashboardSettings
from control.workspace.service import Caller

SESSION_COOKIE = "ft_session"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Handler opt key: viewers may call this state-changing route (sign out).
VIEWER_MAY = "dash_viewer_may"
# Handler opt key: only admins may call this route, even though it only reads.
ADMIN_ONLY = "dash_admin_only"
# Handler opt key: no session needed (signing in); must match OPEN_PATHS.
OPEN = "dash_open"
# Paths of the dash API that take no session (signing in).
OPEN_PATHS = ["^/api/dash/login$"]


class Forbidden(DomainError):
    """Signed in, but the role does not allow it (or the CSRF token is missing)."""

    status_code = 403


def settings_of(connection: ASGIConnection[Any, Any, Any, Any]) -> DashboardSettings:
    settings: DashboardSettings = connection.app.state.dashboard_settings
    return settings


class SessionMiddleware(AbstractAuthenticationMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app, exclude=OPEN_PATHS)

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        token = connection.cookies.get(SESSION_COOKIE)
        if not token:
            raise Unauthorized("not signed in (no session)")
        db: aiosqlite.Connection = connection.app.state.db
        session = await find_session(db, token, settings_of(connection))
        if session is None:
            raise Unauthorized("session expired or signed out: sign in again")
        caller = Caller(
            workspace_id=session.user.workspace_id, workspace_name=session.user.workspace_name
        )
        return AuthenticationResult(user=caller, auth=session)


def session_of(connection: ASGIConnection[Any, Any, Any, Any]) -> DashSession:
    session = connection.scope.get("auth")
    if not isinstance(session, DashSession):
        raise Unauthorized("not signed in (no session)")
    return session


def dash_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if handler.opt.get(OPEN):
        return
    session = session_of(connection)
    method = connection.scope.get("method", "GET")
    if method not in SAFE_METHODS:
        if not session.csrf_matches(connection.headers.get(CSRF_HEADER)):
            raise Forbidden("missing or wrong CSRF token (X-CSRF-Token header)")
        if session.user.role != "admin" and not handler.opt.get(VIEWER_MAY):
            raise Forbidden("viewers may not change anything: an admin may")
    elif handler.opt.get(ADMIN_ONLY) and session.user.role != "admin":
        raise Forbidden("only admins may see this")
