"""The dashboard's pages: static HTML shells, their script and style, the chart library.

No template engine: a page is templates/shell.html (head, navigation) around the page's
own fixed <main> content (templates/<page>.html), put together once per process by
plain substitution of a few fixed values (title, page name, chart library or not, the
current navigation entry); no request data ever goes into a page. The script
(static/dash.js) asks /api/dash/* for the data and opens the page's live stream. A page
holds no data, so it is served without a session; the script sends a signed-out visitor
to the sign-in page. Everything ships in this folder (no CDN): see static/vendor/README.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.params import FromPath
from litestar.response import Redirect
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


CHART_ASSETS = """  <link rel="stylesheet" href="/dash/static/vendor/uPlot.min.css">
  <script src="/dash/static/vendor/uPlot.iife.min.js" defer></script>
"""


@dataclass(frozen=True, slots=True)
class Page:
    title: str
    nav: str  # the navigation entry it belongs to (marked aria-current)
    charts: bool  # loads the chart library


PAGES = {
    "overview": Page("Overview", "/dash", charts=True),
    "node": Page("Node", "", charts=True),
    "incidents": Page("Incidents", "/dash/incidents", charts=False),
    "incident": Page("Incident", "/dash/incidents", charts=True),
    "channels": Page("Channels", "/dash/channels", charts=False),
    "workspace": Page("Workspace", "/dash/workspace", charts=False),
}


def _template(name: str) -> str:
    return resources.files("control.dashboard").joinpath("templates", name).read_text("utf-8")


@cache
def _page(name: str) -> str:
    if name not in PAGES:
        return _template(name)  # a page of its own (sign-in: no navigation)
    page = PAGES[name]
    main = "".join(
        f"    {line}" if line.strip() else line
        for line in _template(f"{name}.html").splitlines(keepends=True)
    )
    html = (
        _template("shell.html")
        .replace("{title}", page.title)
        .replace("{charts}", CHART_ASSETS if page.charts else "")
        .replace("{page}", name)
        .replace("{main}", main)
    )
    if page.nav:
        html = html.replace(
            f'<a href="{page.nav}">', f'<a href="{page.nav}" aria-current="page">', 1
        )
    return html


def _html(name: str) -> Response[str]:
    return Response(_page(name), media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


@get("/", include_in_schema=False)
async def root_redirect() -> Redirect:
    """A browser pointed at the control plane's address lands on the dashboard."""
    return Redirect(path="/dash")


@get(["/dash", "/dash/"], include_in_schema=False)
async def overview_page() -> Response[str]:
    return _html("overview")


@get("/dash/login", include_in_schema=False)
async def login_page() -> Response[str]:
    return _html("login.html")


@get("/dash/nodes/{node_uuid:str}", include_in_schema=False)
async def node_page(node_uuid: FromPath[str]) -> Response[str]:
    return _html("node")


@get("/dash/incidents", include_in_schema=False)
async def incidents_page() -> Response[str]:
    return _html("incidents")


@get("/dash/incidents/{incident_uuid:str}", include_in_schema=False)
async def incident_page(incident_uuid: FromPath[str]) -> Response[str]:
    return _html("incident")


@get("/dash/channels", include_in_schema=False)
async def channels_page() -> Response[str]:
    return _html("channels")


@get("/dash/workspace", include_in_schema=False)
async def workspace_page() -> Response[str]:
    return _html("workspace")


def page_route_handlers() -> list[Any]:
    static_dir = resources.files("control.dashboard").joinpath("static")
    return [
        root_redirect,
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
