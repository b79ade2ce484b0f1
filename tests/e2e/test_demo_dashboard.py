"""`make demo`'s dashboard: reachable from the root namespace, and its printed login works.

The demo's control plane runs inside the victim namespace (no route out of it); the demo
forwards a port of the root namespace's loopback to it and makes a one-run admin. This
signs in with that login from the root namespace, as a browser on the demo machine would,
and opens the live stream through the forward. No agent and no flood: a few seconds.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.capability import require, require_root

pytestmark = [pytest.mark.lab]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    require_root()
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from lab.demo import Stack, open_dashboard

    stack = Stack(tmp_path / "demo", control_args=["--insecure-cookies"])
    try:
        stack.start(agent=False)
        dashboard = open_dashboard(stack, port=0)
        try:
            yield stack, dashboard
        finally:
            dashboard.close()
    finally:
        stack.close()


def test_the_printed_login_signs_in_from_the_root_namespace(demo: tuple[Any, Any]) -> None:
    stack, dashboard = demo
    assert dashboard.base.startswith("http://127.0.0.1:")
    assert len(dashboard.password) >= 16
    with httpx.Client(base_url=dashboard.base, timeout=10.0) as client:
        page = client.get("/dash/login")
        assert page.status_code == 200 and "sign in" in page.text
        wrong = client.post(
            "/api/dash/login", json={"email": dashboard.email, "password": "not the one"}
        )
        assert wrong.status_code == 401, wrong.text
        signed = client.post(
            "/api/dash/login", json={"email": dashboard.email, "password": dashboard.password}
        )
        assert signed.status_code == 200, signed.text
        assert "secure" not in signed.headers["set-cookie"].lower()  # plain HTTP lab
        me = client.get("/api/dash/me").json()
        assert (me["email"], me["role"], me["workspace"]) == (dashboard.email, "admin", "demo")
        # The live stream (what the node page draws the flood from) passes the forward.
        with client.stream("GET", "/api/dash/live") as stream:
            assert stream.status_code == 200
            lines = stream.iter_lines()
            assert next(line for line in lines if line.startswith("event:")) == "event: hello"
    # The same data as the API inside the namespace: the forward reaches that control plane.
    assert stack.get("/api/v1/workspace")["workspace"]["name"] == "demo"
