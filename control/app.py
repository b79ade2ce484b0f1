"""The control plane's Litestar application: routes, auth, store lifespan, error mapping.

`create_app(db_path)` builds it; `ftcontrol serve` runs it under uvicorn. The store, the
incident event bus and the incident service live on `app.state` (`db`, `events`,
`incidents`, `node_policy`, `notifications`); all but the last are also injectable by
those names.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Request, Response, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig

from control.agentapi.runtime import agentapi_lifespan
from control.auth import BEARER, DeployTokenMiddleware, provide_caller
from control.db import open_db
from control.errors import DomainError
from control.events import IncidentEvents
from control.install.assets import InstallAssets
from control.limits import MAX_BODY_BYTES
from control.notify.service import NotificationService
from control.openapi_errors import document_errors
from control.ratelimit import (
    DEFAULT_MAX_FAILURES,
    DEFAULT_WINDOW_S,
    FailureLimiter,
    auth_failure_limit,
)
from control.services.incidents import IncidentService
from control.services.nodes import NodeStatusPolicy

log = logging.getLogger("ftcontrol")


# ---- errors: every failure leaves as {"ok": false, "error": ...} ----------------------

REASON_MAX = 300


def _error(
    status: int,
    reason: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    if len(reason) > REASON_MAX:  # reasons may quote the input: never echo a huge one
        reason = reason[: REASON_MAX - 3] + "..."
    body: dict[str, Any] = {"ok": False, "error": reason}
    if field:
        body["field"] = field
    return Response(body, status_code=status, headers=headers)


def _domain_error(_: Request[Any, Any, Any], exc: DomainError) -> Response[dict[str, Any]]:
    return _error(exc.status_code, exc.reason, exc.field)


def _validation_error(
    _: Request[Any, Any, Any], exc: ValidationException
) -> Response[dict[str, Any]]:
    """Litestar's own input validation (query types, body decoding), naming the field."""
    details = exc.extra if isinstance(exc.extra, list) else []
    for item in details:
        if isinstance(item, dict) and item.get("key") == "data" and item.get("message") == "'data'":
            # No body at all: Litestar reports the KeyError of its `data` argument.
            return _error(400, "body: a request body is required", "body")
        if isinstance(item, dict) and item.get("message"):
            field = _field_of(item)
            message = str(item["message"])
            return _error(400, f"{field}: {message}" if field else message, field)
    return _error(400, exc.detail or "invalid request")


def _field_of(item: dict[str, Any]) -> str | None:
    key = item.get("key")
    if key and key not in ("body", "data"):
        # `range_` and the like: Python names of parameters whose wire name is a keyword.
        return str(key).rstrip("_")
    message = str(item.get("message", ""))
    # msgspec: "Object missing required field `name` - at `$.config`",
    # "Expected `str`, got `int` - at `$.config.url`"
    field = _quoted_after(message, "field `")
    path = _quoted_after(message, "at `$.")
    if field and path:
        return f"{path}.{field}"
    return field or path


def _quoted_after(message: str, marker: str) -> str | None:
    if marker not in message:
        return None
    return message.split(marker, 1)[1].split("`", 1)[0]


def _http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    # Keep the framework's headers: `Allow` on 405 (RFC 9110 requires it).
    return _error(exc.status_code, exc.detail or "error", headers=dict(exc.headers or {}))


def _internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error(500, "internal server error")


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: _domain_error,
    ValidationException: _validation_error,
    HTTPException: _http_error,
    Exception: _internal_error,
}


# ---- routes ---------------------------------------------------------------------------


def _route_handlers() -> list[Any]:
    from control.api.agent import agent_route_handlers
    from control.api.analytics import analytics_summary
    from control.api.channel_delivery import ChannelDeliveryController
    from control.api.channels import ChannelsController
    from control.api.deploy import deploy
    from control.api.health import health
    from control.api.incidents import IncidentsController
    from control.api.metrics import metrics
    from control.api.nodes import NodesController
    from control.api.status import status_overview
    from control.api.workspace import get_workspace
    from control.install.routes import install_script, install_wheel

    v1 = Router(
        path="/api/v1",
        route_handlers=[
            NodesController,
            IncidentsController,
            ChannelsController,
            ChannelDeliveryController,
            get_workspace,
            analytics_summary,
            status_overview,
        ],
        security=[{BEARER: []}],
    )
    return [
        health,
        metrics,
        deploy,
        v1,
        *agent_route_handlers(),
        install_script,
        install_wheel,
    ]


# ---- lifespan: the store and its services ----------------------------------------------


def _lifespan(db_path: str, node_policy: NodeStatusPolicy) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        db = await open_db(db_path)
        events = IncidentEvents()
        app.state.db = db
        app.state.events = events
        app.state.incidents = IncidentService(db, events)
        app.state.node_policy = node_policy
        notifications = NotificationService(db, events)
        app.state.notifications = notifications
        try:
            await notifications.start()
            yield
        finally:
            await notifications.stop()
            await db.close()

    return lifespan


def _from_state(name: str) -> Provide:
    def provide(state: State) -> Any:
        return state[name]

    return Provide(provide, sync_to_thread=False)


def create_app(
    db_path: str,
    *,
    offline_after_sec: float = 15.0,
    elevated_factor: float = 1.5,
    auth_max_failures: int = DEFAULT_MAX_FAILURES,
    auth_window_s: float = DEFAULT_WINDOW_S,
    max_body_bytes: int = MAX_BODY_BYTES,
    debug: bool = False,
    install_assets: InstallAssets | None = None,
    public_url: str | None = None,
) -> Litestar:
    node_policy = NodeStatusPolicy(
        offline_after_sec=offline_after_sec, elevated_factor=elevated_factor
    )
    limiter = FailureLimiter(auth_max_failures, auth_window_s)
    app = Litestar(
        route_handlers=_route_handlers(),
        lifespan=[_lifespan(db_path, node_policy), agentapi_lifespan],
        # HTTP request metrics (ftcontrol_requests_total, ..._request_duration_seconds)
        # wrap everything, auth failures included.
        middleware=[
            PrometheusConfig(app_name="ftcontrol", prefix="ftcontrol", group_path=True).middleware,
            # Before token checks: an address over its failure limit gets 429, no lookup.
            auth_failure_limit(limiter),
            DeployTokenMiddleware,
        ],
        request_max_body_size=max_body_bytes,
        dependencies={
            "caller": Provide(provide_caller, sync_to_thread=False),
            "db": _from_state("db"),
            "events": _from_state("events"),
            "incidents": _from_state("incidents"),
            "node_policy": _from_state("node_policy"),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="ftcontrol",
            version="1",
            path="/schema",
            components=Components(
                security_schemes={
                    BEARER: SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="Workspace deploy token (64 hex characters)",
                    )
                }
            ),
        ),
        debug=debug,
    )
    app.state.auth_limiter = limiter
    # GET /install.sh and the wheel: from the venv ftcontrol runs in unless a test says.
    app.state.install_assets = install_assets or InstallAssets.for_prefix()
    app.state.public_url = public_url
    document_errors(app)
    return app
