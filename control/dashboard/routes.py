"""/api/dash/*: sign in and out, the signed-in user, live streams, and the REST resources.

The resources (nodes, incidents, channels, workspace, status, analytics, node rules, pcap
download) are the REST API v1 handlers themselves, mounted again under /api/dash behind
the session middleware: the same validation, answers and workspace scoping as the REST
API, with a session cookie (and CSRF token on changes) instead of a deploy token.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import msgspec
from litestar import Request, Response, Router, get, post
from litestar.datastructures import State
from litestar.params import FromPath, JSONBody
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.types import ControllerRouterHandler

from control.core import clock
from control.core.api_types import Ok
from control.core.deps import CallerDep, Db, NodePolicyDep
from control.core.errors import DomainError, Unauthorized
from control.core.ratelimit import FailureLimiter
from control.dashboard import backfill as charts
from control.dashboard import sessions, users
from control.dashboard.auth import (
    OPEN,
    SESSION_COOKIE,
    VIEWER_MAY,
    SessionMiddleware,
    dash_guard,
    session_of,
)
from control.dashboard.channel_forms import channel_forms
from control.dashboard.live import LiveEvent, live_hub_of
from control.dashboard.schemas import ChannelForms, LoginRequest, Me, NewDeployToken
from control.dashboard.settings import DashboardSettings
from control.dashboard.user_routes import USER_ROUTES
from control.nodes import service as node_store
from control.workspace.service import rotate_token

DASH_SESSION = "DashSession"  # the OpenAPI security scheme name
KEEPALIVE_S = 15.0  # an SSE comment this often: proxies keep the stream, dead peers show
CLOSING_CHECK_S = 1.0  # how often an idle stream looks whether the server is stopping


class TooManyAttempts(DomainError):
    status_code = 429


class UnsupportedMediaType(DomainError):
    status_code = 415


def _settings(state: State) -> DashboardSettings:
    settings: DashboardSettings = state.dashboard_settings
    return settings


def _source(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


@post(
    "/login",
    status_code=200,
    tags=["dashboard"],
    summary="Sign in (sets the session cookie)",
    opt={OPEN: True},
    security=[],
)
async def login(
    data: JSONBody[LoginRequest], request: Request[Any, Any, Any], db: Db, state: State
) -> Response[Me]:
    # A cross-site form cannot send application/json without a CORS preflight, which is
    # never granted: this is the sign-in's CSRF protection (there is no session yet).
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise UnsupportedMediaType("content-type: application/json required")
    limiter: FailureLimiter = state.auth_limiter
    source = _source(request)
    wait = limiter.retry_after(source)
    if wait is not None:
        limiter.refused += 1
        seconds = max(1, math.ceil(wait))
        raise TooManyAttempts(
            f"too many failed authentication attempts from this address; retry after {seconds} s"
        )
    user = await users.check_login(db, data.email, data.password)
    if user is None:
        limiter.failed(source)
        raise Unauthorized("wrong e-mail or password")
    settings = _settings(state)
    token, csrf = await sessions.start_session(
        db, user.user_id, request.cookies.get(SESSION_COOKIE)
    )
    response = Response(
        Me(
            ok=True,
            email=user.email,
            role=user.role,
            workspace=user.workspace_name,
            csrf_token=csrf,
        )
    )
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(settings.absolute_s),
        path="/",
        secure=settings.secure_cookies,
        httponly=True,
        samesite="strict",
    )
    return response


@post("/logout", status_code=200, tags=["dashboard"], summary="Sign out", opt={VIEWER_MAY: True})
async def logout(request: Request[Any, Any, Any], db: Db, state: State) -> Response[Ok]:
    await sessions.end_session(db, session_of(request).session_id)
    response = Response(Ok(ok=True))
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@get("/me", tags=["dashboard"], summary="The signed-in user and their CSRF token")
async def me(request: Request[Any, Any, Any]) -> Me:
    session = session_of(request)
    return Me(
        ok=True,
        email=session.user.email,
        role=session.user.role,
        workspace=session.user.workspace_name,
        csrf_token=session.csrf_token,
    )


@post(
    "/workspace/deploy-token",
    status_code=200,
    tags=["dashboard"],
    summary="Revoke the deploy token and issue a new one (shown once; admin)",
)
async def new_deploy_token(caller: CallerDep, db: Db) -> NewDeployToken:
    return NewDeployToken(ok=True, token=await rotate_token(db, caller.workspace_name))


@get("/channel-forms", tags=["dashboard"], summary="The channel create form of each type")
async def get_channel_forms() -> ChannelForms:
    return ChannelForms(ok=True, forms=channel_forms())


# ---- live streams (server-sent events) ------------------------------------------------


async def _stream(
    state: State,
    workspace_id: int,
    node_uuid: str | None,
    backfill: Callable[[], Awaitable[msgspec.Struct]],
) -> AsyncIterator[ServerSentEventMessage]:
    hub = live_hub_of(state)
    with hub.subscribe(workspace_id, node_uuid) as queue:
        # The charts' last minutes, taken once subscribed, before this stream yields (the
        # overview's totals: in the same step, so no point is in both them and the queue).
        history = await backfill()
        # Sent once subscribed: a page (or test) that saw it misses nothing published after.
        yield ServerSentEventMessage(event="hello", data="{}")
        yield ServerSentEventMessage(event="backfill", data=msgspec.json.encode(history).decode())
        idle = 0.0
        while not hub.closing:
            try:
                event: LiveEvent = await asyncio.wait_for(queue.get(), CLOSING_CHECK_S)
            except TimeoutError:
                idle += CLOSING_CHECK_S
                if idle >= KEEPALIVE_S:
                    idle = 0.0
                    yield ServerSentEventMessage(comment="keepalive")
                continue
            idle = 0.0
            yield ServerSentEventMessage(event=event.kind, data=event.data)


@get("/live", tags=["dashboard"], summary="Live stream of the workspace (server-sent events)")
async def live_workspace(caller: CallerDep, state: State) -> ServerSentEvent:
    async def history() -> msgspec.Struct:
        return charts.workspace_backfill(live_hub_of(state), caller.workspace_id)  # no await

    return ServerSentEvent(_stream(state, caller.workspace_id, None, history))


@get(
    "/live/nodes/{node_uuid:str}",
    tags=["dashboard"],
    summary="Live stream of one node (server-sent events)",
)
async def live_node(
    node_uuid: FromPath[str], caller: CallerDep, db: Db, node_policy: NodePolicyDep, state: State
) -> ServerSentEvent:
    # One read when the page opens (the node must be the workspace's: 404 otherwise);
    # none per point.
    await node_store.get_node(db, caller.workspace_id, node_uuid, node_policy)

    async def history() -> msgspec.Struct:
        return await charts.node_backfill(db, caller.workspace_id, node_uuid, clock.now())

    return ServerSentEvent(_stream(state, caller.workspace_id, node_uuid, history))


def dash_router(v1_handlers: Sequence[ControllerRouterHandler]) -> Router:
    """/api/dash: the dashboard's own routes, and the REST API v1 handlers unchanged
    (same validation, answers and workspace scoping) behind a session instead of a token."""
    return Router(
        path="/api/dash",
        route_handlers=[
            login,
            logout,
            me,
            *USER_ROUTES,
            new_deploy_token,
            get_channel_forms,
            live_workspace,
            live_node,
            *v1_handlers,
        ],
        middleware=[SessionMiddleware],
        guards=[dash_guard],
        security=[{DASH_SESSION: []}],
    )
