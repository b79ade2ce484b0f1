"""Document, in /schema, the error responses each route really gives, in the shape it sends.

Every failure leaves the app as `{"ok": false, "error": <reason>[, "field": <name>]}`
(control.app maps them in one place), but Litestar's generated schema only knows its own
400 body (`status_code`/`detail`). A client generated from /schema, or a schema fuzzer,
would then reject every real error. This fills in, per route, the statuses that route can
answer with, all with `ErrorBody`.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.datastructures import ResponseSpec
from litestar.routes import HTTPRoute

from control.core.api_types import ErrorBody

_REASONS = {
    400: "Invalid request: a value is missing, malformed or out of range (`field` names it)",
    401: "Missing, unknown or revoked credentials",
    402: "No active subscription, or the plan's node limit is reached",
    403: "Dashboard: missing or wrong CSRF token, or the role does not allow it; "
    "escalate: the address is outside the workspace's declared prefixes",
    404: "No such object in the caller's workspace",
    409: "The change conflicts with the current state (duplicate name, transition)",
    413: "Request body larger than the limit",
    415: "Content type not accepted (sign-in takes application/json only)",
    429: "Too many failed authentication attempts from this address (see Retry-After)",
    502: "The BGP speaker (ExaBGP) rejected the announcement",
    503: "Temporarily unable to take the request; retry later",
}

# Routes that answer with statuses beyond the common set (method, path format).
_EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/deploy"): (402, 409),
    ("POST", "/api/v1/nodes"): (402, 409),
    ("GET", "/api/v1/incidents"): (404,),  # ?node= names no node of the workspace
    ("PATCH", "/api/v1/nodes/{node_uuid}"): (409,),
    ("PATCH", "/api/v1/incidents/{incident_uuid}"): (409,),
    ("POST", "/api/v1/channels/{channel_id}/test"): (503,),
    ("POST", "/api/v1/agent/metrics"): (503,),
    ("POST", "/api/v1/agent/incidents"): (404, 409),
    ("POST", "/api/v1/agent/incidents/{incident_uuid}"): (409,),
    ("POST", "/api/v1/agent/incidents/{incident_uuid}/resolve"): (409,),
    ("POST", "/api/v1/nodes/{node_uuid}/rules"): (409,),
    # BGP: 409 "BGP is not configured" (no --bgp-config), not active, cap, nothing to build
    ("POST", "/api/v1/incidents/{incident_uuid}/escalate"): (403, 409, 502),
    ("GET", "/api/v1/bgp/announcements"): (409,),
    ("DELETE", "/api/v1/bgp/announcements/{announcement_id}"): (409,),
    ("GET", "/api/v1/bgp/peers"): (409,),
}
_DASH_EXTRA: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/dash/login"): (415,),
}
_UNAUTHENTICATED = ("/api/health", "/metrics", "/schema", "/dash")
# /api/dash/* mounts the REST API v1 handlers again (control.dashboard.routes).
_DASH, _V1 = "/api/dash/", "/api/v1/"
_WITH_BODY = {"POST", "PUT", "PATCH"}


def error_statuses(method: str, path_format: str) -> tuple[int, ...]:
    """The error statuses `method path_format` can answer with."""
    if path_format.startswith(_UNAUTHENTICATED):
        return ()
    statuses = {400, 401, 429}
    if path_format.startswith(_DASH):
        statuses.add(403)
        statuses.update(_DASH_EXTRA.get((method, path_format), ()))
        path_format = _V1 + path_format.removeprefix(_DASH)
    if "{" in path_format:
        statuses.add(404)
    if method in _WITH_BODY:
        statuses.add(413)
    statuses.update(_EXTRA.get((method, path_format), ()))
    return tuple(sorted(statuses))


def document_errors(app: Litestar) -> None:
    """Add the error responses to every route handler before /schema is first built."""
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            for method in handler.http_methods:
                statuses = error_statuses(method, route.path_format)
                if not statuses:
                    continue
                ours = {
                    status: ResponseSpec(
                        data_container=ErrorBody,
                        description=_REASONS[status],
                        generate_examples=False,
                    )
                    for status in statuses
                }
                handler.responses = {**ours, **(handler.responses or {})}
