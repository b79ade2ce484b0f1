"""The page shells: one navigation shell around each page's own content, served as is."""

from __future__ import annotations

import re

from tests.api.conftest import Api

# path -> (data-page, the navigation entry marked current or None, loads the charts)
PAGES = {
    "/dash": ("overview", "/dash", True),
    "/dash/nodes/5f0c8a52-0000-4000-8000-000000000001": ("node", None, True),
    "/dash/incidents": ("incidents", "/dash/incidents", False),
    "/dash/incidents/5f0c8a52-0000-4000-8000-000000000002": ("incident", "/dash/incidents", True),
    "/dash/channels": ("channels", "/dash/channels", False),
    "/dash/workspace": ("workspace", "/dash/workspace", False),
}


async def test_every_page_is_the_shell_around_its_own_content(api: Api) -> None:
    for path, (page, current, charts) in PAGES.items():
        r = await api.client.get(path)
        assert r.status_code == 200, (path, r.text)
        html = r.text
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert f'<body data-page="{page}">' in html, path
        assert html.count("<header>") == 1 and html.count('<main id="main"') == 1, path
        assert "{" not in re.sub(r"<script.*?</script>", "", html), path  # every value filled
        marked = re.findall(r'<a href="([^"]+)" aria-current="page">', html)
        assert marked == ([current] if current else []), (path, marked)
        assert ("uPlot.iife.min.js" in html) is charts, path
        assert "https://" not in html and "http://" not in html, path  # nothing from the internet
    login = await api.client.get("/dash/login")
    assert login.status_code == 200 and "<header>" not in login.text


async def test_the_control_planes_root_sends_a_browser_to_the_dashboard(api: Api) -> None:
    r = await api.client.get("/", follow_redirects=False)
    assert r.status_code in (301, 302, 303, 307, 308), r.text
    assert r.headers["location"] == "/dash"
    landed = await api.client.get("/", follow_redirects=True)
    assert landed.status_code == 200 and '<body data-page="overview">' in landed.text
