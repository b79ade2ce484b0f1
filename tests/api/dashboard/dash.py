"""Helpers for the dashboard API tests: users made through the service, signed-in sessions.

The test client talks plain HTTP, and a cookie jar rightly keeps a Secure cookie off plain
HTTP: the session cookie is read from Set-Cookie and sent by hand.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http.cookies import SimpleCookie
from typing import Any

from control.dashboard import users
from tests.api.conftest import Api, Workspace

PASSWORD = "correct horse battery"


@dataclass
class Session:
    token: str
    csrf: str
    set_cookie: str  # the raw Set-Cookie header of the sign-in

    def headers(self, *, csrf: bool = True) -> dict[str, str]:
        headers = {"Cookie": f"ft_session={self.token}"}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers


async def make_user(
    api: Api, ws: Workspace, email: str, role: str = "admin", password: str = PASSWORD
) -> None:
    await users.create_user(api.app.state.db, email, ws.name, role, password)


async def login(api: Api, email: str, password: str = PASSWORD, **extra: Any) -> Session:
    api.client.cookies.clear()
    response = await api.client.post(
        "/api/dash/login", json={"email": email, "password": password}, **extra
    )
    assert response.status_code == 200, response.text
    raw = response.headers["set-cookie"]
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(raw)
    api.client.cookies.clear()
    return Session(cookie["ft_session"].value, response.json()["csrf_token"], raw)


async def signed_in(api: Api, ws: Workspace, email: str, role: str = "admin") -> Session:
    await make_user(api, ws, email, role)
    return await login(api, email)


def concrete(path: str) -> str:
    """A route template with its path parameters filled (`{rule_id:int}` -> 1)."""
    return re.sub(r"\{[^}]+\}", "1", path)
