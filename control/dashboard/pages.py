"""The dashboard's pages: static HTML shells, their script and style, the chart library.

No template engine: each page is a fixed HTML file whose script (static/dash.js) asks
/api/dash/* for its data and opens the page's live stream. A shell holds no data, so it
is served without a session; the script sends a signed-out visitor to the sign-in page.
Everything ships in this folder (no CDN): see static/vendor/README.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

# Scripts only from us; uPlot sets element styles from script, hence 'unsafe-inline' for
# styles only.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-cache",
}


@cache
def _page(name: str) -> str:
    return resources.files("control.dashboard").joinpath("templates", name).read_text("utf-8")


def _html(name: str) -> Response[str]:
    return Response(_page(name), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@get(["/dash", "/dash/"], include_in_schema=False)
async def overview_page() -> Response[str]:
    return _html("overview.html")


@get("/dash/login", include_in_schema=False)
async def login_page() -> Response[str]:
    return _html("login.html")


@get("/dash/nodes/{node_uuid:str}", include_in_schema=False)
async def node_page(node_uuid: FromPath[str]) -> Response[str]:
    return _html("node.html")


@get("/dash/incidents", include_in_schema=False)
async def incidents_page() -> Response[str]:
    return _html("incidents.html")


@get("/dash/incidents/{incident_uuid:str}", include_in_schema=False)
async def incident_page(incident_uuid: FromPath[str]) -> Response[str]:
    return _html("incident.html")


@get("/dash/channels", include_in_schema=False)
async def channels_page() -> Response[str]:
    return _html("channels.html")


@get("/dash/workspace", include_in_schema=False)
async def workspace_page() -> Response[str]:
    return _html("workspace.html")


def page_route_handlers() -> list[Any]:
    static_dir = resources.files("control.dashboard").joinpath("static")
    return [
        overview_page,
        login_page,
        node_page,
        incidents_page,
        incident_page,
        channels_page,
        workspace_page,
        create_static_files_router(
            path="/dash/static",
            directories=[str(static_dir)],
            include_in_schema=False,
            cache_control=CacheControlHeader(no_cache=True),
        ),
    ]
