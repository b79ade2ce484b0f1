"""The control plane's Litestar application, assembled from its areas.

Each area (nodes, incidents, channels, workspace, analytics, agentapi, notify, ops, bgp,
fleet) keeps
its routes, schemas and services together; `control.core` holds what they share (store,
auth, errors -> status mapping, limits). This module only wires them up.

`create_app(db_path)` builds it (`bgp=BgpSettings(...)` adds the BGP speaker);
`ftcontrol serve` runs it under uvicorn. The store, the incident event bus and the
incident service live on `app.state` (`db`, `events`, `incidents`, `node_policy`,
`notifications`, `upstream`, `fleet`); the first four are also injectable by those names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig
from litestar.types import ControllerRouterHandler

from control.agentapi.routes import AgentController
from control.agentapi.runtime import agentapi_lifespan
from control.analytics.routes import analytics_summary
from control.bgp.lifespan import BgpSettings, bgp_lifespan
from control.bgp.routes import BgpController, escalate_incident
from control.channels.delivery_routes import ChannelDeliveryController
from control.channels.routes import ChannelsController
from control.core.auth import BEARER, DeployTokenMiddleware, provide_caller
from control.core.db import open_db
from control.core.errors import EXCEPTION_HANDLERS
from control.core.limits import MAX_BODY_BYTES
from control.core.openapi_errors import document_errors
from control.core.ratelimit import (
    DEFAULT_MAX_FAILURES,
    DEFAULT_WINDOW_S,
    FailureLimiter,
    auth_failure_limit,
)
from control.dashboard.lifespan import dashboard_lifespan
from control.dashboard.live import LiveHub
from control.dashboard.pages import page_route_handlers
from control.dashboard.routes import DASH_SESSION, dash_router
from control.dashboard.settings import DashboardSettings
from control.fleet.lifespan import fleet_lifespan
from control.fleet.routes import FleetAgentController, FleetGroupsController
from control.fleet.settings import FleetSettings
from control.incidents.event_bus import IncidentEvents
from control.incidents.routes import IncidentsController
from control.incidents.service import IncidentService
from control.install.assets import InstallAssets
from control.install.routes import install_script, install_wheel
from control.nodes.agent_routes import NodeAgentController
from control.nodes.deploy import deploy
from control.nodes.operator_rules import NodeOperatorRulesController
from control.nodes.routes import NodesController
from control.nodes.service import NodeStatusPolicy
from control.nodes.status import status_overview
from control.nodes.traffic import traffic
from control.notify.service import NotificationService
from control.ops.health import health
from control.ops.metrics import metrics
from control.workspace.routes import get_workspace

# ---- routes: each area's handlers ------------------------------------------------------

# REST API v1: deploy-token auth, scoped to the caller's workspace.
V1_HANDLERS: list[ControllerRouterHandler] = [
    NodesController,
    NodeOperatorRulesController,
    NodeAgentController,
    traffic,
    status_overview,
    IncidentsController,
    ChannelsController,
    ChannelDeliveryController,
    get_workspace,
    analytics_summary,
    escalate_incident,
    BgpController,
    FleetGroupsController,
]


def _route_handlers() -> list[ControllerRouterHandler]:
    v1 = Router(path="/api/v1", route_handlers=V1_HANDLERS, security=[{BEARER: []}])
    # The dashboard serves the same v1 handlers under /api/dash with session auth.
    return [
        health,
        metrics,
        deploy,
        v1,
        AgentController,
        FleetAgentController,
        dash_router(V1_HANDLERS),
        *page_route_handlers(),
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
    dashboard: DashboardSettings | None = None,
    debug: bool = False,
    install_assets: InstallAssets | None = None,
    public_url: str | None = None,
    bgp: BgpSettings | None = None,
    fleet: FleetSettings | None = None,
) -> Litestar:
    node_policy = NodeStatusPolicy(
        offline_after_sec=offline_after_sec, elevated_factor=elevated_factor
    )
    limiter = FailureLimiter(auth_max_failures, auth_window_s)
    app = Litestar(
        route_handlers=_route_handlers(),
        lifespan=[
            _lifespan(db_path, node_policy),
            agentapi_lifespan,
            dashboard_lifespan,
            bgp_lifespan,  # stopped before the store (ExaBGP's sessions close first)
            fleet_lifespan,  # last: stopped first (baselines saved while the store is open)
        ],
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
                    ),
                    DASH_SESSION: SecurityScheme(
                        type="apiKey",
                        name="ft_session",
                        security_scheme_in="cookie",
                        description="Dashboard session (POST /api/dash/login); changes "
                        "also need the X-CSRF-Token header",
                    ),
                }
            ),
        ),
        debug=debug,
    )
    app.state.auth_limiter = limiter
    app.state.dashboard_settings = dashboard or DashboardSettings()
    app.state.live_hub = LiveHub()
    # GET /install.sh and the wheel: from the venv ftcontrol runs in unless a test says.
    app.state.install_assets = install_assets or InstallAssets.for_prefix()
    app.state.public_url = public_url
    # Upstream mitigation: None (no --bgp-config) leaves every BGP route answering 409.
    app.state.bgp_settings = bgp
    # Fleet detection: None takes FleetSettings.from_env() (FTCONTROL_FLEET=off turns it off).
    app.state.fleet_settings = fleet
    document_errors(app)
    return app
