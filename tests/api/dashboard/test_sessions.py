"""Dashboard sign-in, sessions, CSRF and roles: /api/dash/login, /logout, /me and every
other /api/dash/* route."""

from __future__ import annotations

from pathlib import Path

from litestar.testing import AsyncTestClient

from control.app import create_app
from control.dashboard.settings import DashboardSettings
from tests.api.conftest import Api, Workspace, assert_error
from tests.api.dashboard.dash import PASSWORD, concrete, login, make_user, signed_in

SAFE = {"GET", "HEAD", "OPTIONS"}


def dash_routes(api: Api) -> list[tuple[str, str]]:
    """(method, concrete path) of every /api/dash/* route but sign-in."""
    found = []
    for route in api.app.routes:
        if not route.path.startswith("/api/dash/") or route.path == "/api/dash/login":
            continue
        for method in sorted(getattr(route, "methods", ())):
            if method not in {"OPTIONS", "HEAD"}:
                found.append((method, concrete(route.path)))
    assert len(found) > 20  # the REST resources are mounted too
    return found


async def test_login_sets_a_strict_http_only_secure_cookie(api: Api, ws: Workspace) -> None:
    session = await signed_in(api, ws, "ops@acme.example")
    flags = session.set_cookie.lower()
    assert "httponly" in flags and "samesite=strict" in flags and "secure" in flags
    me = await api.client.get("/api/dash/me", headers=session.headers(csrf=False))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["email"] == "ops@acme.example" and body["role"] == "admin"
    assert body["workspace"] == "acme" and body["csrf_token"] == session.csrf


async def test_insecure_cookies_leave_out_secure_only(tmp_path: Path) -> None:
    app = create_app(str(tmp_path / "db"), dashboard=DashboardSettings(secure_cookies=False))
    async with AsyncTestClient(app) as client:
        api = Api(app=app, client=client, db_path=tmp_path / "db")
        ws = await api.workspace("lab")
        session = await signed_in(api, ws, "lab@lab.example")
    flags = session.set_cookie.lower()
    assert "secure" not in flags
    assert "httponly" in flags and "samesite=strict" in flags


async def test_wrong_password_and_unknown_email_answer_the_same_401(
    api: Api, ws: Workspace
) -> None:
    await make_user(api, ws, "ops@acme.example")
    wrong = await api.client.post(
        "/api/dash/login", json={"email": "ops@acme.example", "password": "not it at all"}
    )
    unknown = await api.client.post(
        "/api/dash/login", json={"email": "nobody@acme.example", "password": PASSWORD}
    )
    assert_error(wrong, 401, "wrong e-mail or password")
    assert_error(unknown, 401)
    assert wrong.json() == unknown.json()
    assert "set-cookie" not in wrong.headers


async def test_login_names_the_missing_field_and_wants_json(api: Api, ws: Workspace) -> None:
    missing = await api.client.post("/api/dash/login", json={"email": "ops@acme.example"})
    assert assert_error(missing, 400, "password")["field"] == "password"
    form = await api.client.post(
        "/api/dash/login",
        content=b'{"email": "a@b.example", "password": "x"}',
        headers={"Content-Type": "text/plain"},
    )
    assert_error(form, 415, "application/json")


async def test_failed_logins_share_the_per_address_limit(tmp_path: Path) -> None:
    app = create_app(str(tmp_path / "db"), auth_max_failures=3)
    async with AsyncTestClient(app) as client:
        api = Api(app=app, client=client, db_path=tmp_path / "db")
        ws = await api.workspace("acme")
        await make_user(api, ws, "ops@acme.example")
        bad = {"email": "ops@acme.example", "password": "guess guess"}
        for _ in range(2):
            assert (await client.post("/api/dash/login", json=bad)).status_code == 401
        # A wrong deploy token on the REST API counts against the same address.
        rest = await client.get("/api/v1/nodes", headers={"Authorization": "Bearer " + "0" * 64})
        assert rest.status_code == 401
        good = {"email": "ops@acme.example", "password": PASSWORD}
        limited = await client.post("/api/dash/login", json=good)
        assert_error(limited, 429, "retry after")
        rest_limited = await client.get("/api/v1/nodes", headers=ws.headers)
        assert rest_limited.status_code == 429


async def test_every_dash_route_answers_401_without_a_session(api: Api, ws: Workspace) -> None:
    for method, path in dash_routes(api):
        response = await api.client.request(method, path)
        assert_error(response, 401)
        forged = await api.client.request(
            method, path, headers={"Cookie": "ft_session=" + "a" * 64}
        )
        assert_error(forged, 401)


async def test_every_change_needs_the_csrf_token(api: Api, ws: Workspace) -> None:
    session = await signed_in(api, ws, "ops@acme.example")
    changes = [(m, p) for m, p in dash_routes(api) if m not in SAFE]
    assert {"POST", "PATCH", "PUT", "DELETE"} <= {m for m, _ in changes}
    for method, path in changes:
        without = await api.client.request(method, path, headers=session.headers(csrf=False))
        assert_error(without, 403, "CSRF")
        wrong = {**session.headers(csrf=False), "X-CSRF-Token": "x" + session.csrf[1:]}
        assert_error(await api.client.request(method, path, headers=wrong), 403, "CSRF")
    # ... and nothing was changed: the session is still there (logout was refused).
    assert (await api.client.get("/api/dash/me", headers=session.headers())).status_code == 200


async def test_viewer_reads_but_changes_nothing(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    node = (
        await api.client.post(
            "/api/dash/nodes", json={"name": "edge-1", "ip": "192.0.2.1"}, headers=admin.headers()
        )
    ).json()["node"]
    viewer = await signed_in(api, ws, "viewer@acme.example", role="viewer")
    for path in (
        "/api/dash/status",
        "/api/dash/nodes",
        f"/api/dash/nodes/{node['uuid']}",
        "/api/dash/incidents",
        "/api/dash/channels",
        "/api/dash/workspace",
    ):
        response = await api.client.get(path, headers=viewer.headers())
        assert response.status_code == 200, (path, response.text)
    changes = [(m, p) for m, p in dash_routes(api) if m not in SAFE and p != "/api/dash/logout"]
    for method, path in changes:
        response = await api.client.request(method, path, headers=viewer.headers(), json={})
        assert_error(response, 403, "viewers")
    assert_error(await api.client.get("/api/dash/users", headers=viewer.headers()), 403, "admin")
    bye = await api.client.post("/api/dash/logout", headers=viewer.headers())
    assert bye.status_code == 200, bye.text


async def test_admin_changes_through_the_rest_handlers(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    created = await api.client.post(
        "/api/dash/channels",
        json={
            "name": "hook",
            "type": "webhook",
            "config": {"url": "ftp://x", "secret": "0123456789abcdef0123"},
        },
        headers=admin.headers(),
    )
    assert_error(created, 400, "url")  # the API's own per-type validation
    created = await api.client.post(
        "/api/dash/channels",
        json={
            "name": "hook",
            "type": "webhook",
            "config": {"url": "https://h.example/x", "secret": "0123456789abcdef0123"},
        },
        headers=admin.headers(),
    )
    assert created.status_code == 201, created.text
    listed = await api.client.get("/api/v1/channels", headers=ws.headers)
    assert [c["name"] for c in listed.json()["channels"]] == ["hook"]
    users_list = await api.client.get("/api/dash/users", headers=admin.headers())
    assert [u["email"] for u in users_list.json()["users"]] == ["admin@acme.example"]


async def test_deploy_token_rotation_shows_the_new_token_once(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    rotated = await api.client.post("/api/dash/workspace/deploy-token", headers=admin.headers())
    assert rotated.status_code == 200, rotated.text
    token = rotated.json()["token"]
    assert (await api.client.get("/api/v1/workspace", headers=ws.headers)).status_code == 401
    fresh = {"Authorization": f"Bearer {token}"}
    assert (await api.client.get("/api/v1/workspace", headers=fresh)).status_code == 200


async def test_login_rotates_the_session_and_logout_ends_it(api: Api, ws: Workspace) -> None:
    first = await signed_in(api, ws, "ops@acme.example")
    second = await login(api, "ops@acme.example", headers={"Cookie": f"ft_session={first.token}"})
    assert second.token != first.token and second.csrf != first.csrf
    assert_error(await api.client.get("/api/dash/me", headers=first.headers()), 401)
    assert (await api.client.get("/api/dash/me", headers=second.headers())).status_code == 200
    bye = await api.client.post("/api/dash/logout", headers=second.headers())
    assert bye.status_code == 200 and "ft_session=" in bye.headers["set-cookie"]
    assert_error(await api.client.get("/api/dash/me", headers=second.headers()), 401)


async def test_sessions_survive_a_restart(tmp_path: Path) -> None:
    db = str(tmp_path / "db")
    app = create_app(db)
    async with AsyncTestClient(app) as client:
        api = Api(app=app, client=client, db_path=tmp_path / "db")
        session = await signed_in(api, await api.workspace("acme"), "ops@acme.example")
    again = create_app(db)
    async with AsyncTestClient(again) as client:
        me = await client.get("/api/dash/me", headers=session.headers())
        assert me.status_code == 200, me.text


async def test_idle_and_absolute_expiry(api: Api, ws: Workspace) -> None:
    settings: DashboardSettings = api.app.state.dashboard_settings
    idle = await signed_in(api, ws, "idle@acme.example")
    await api.sql(
        "UPDATE dash_sessions SET last_seen = last_seen - ? WHERE csrf_token = ?",
        settings.idle_s + 1,
        idle.csrf,
    )
    assert_error(await api.client.get("/api/dash/me", headers=idle.headers()), 401, "expired")
    old = await signed_in(api, ws, "old@acme.example")
    # used a moment ago, but signed in longer ago than the absolute lifetime
    await api.sql(
        "UPDATE dash_sessions SET created_at = created_at - ? WHERE csrf_token = ?",
        settings.absolute_s + 1,
        old.csrf,
    )
    assert_error(await api.client.get("/api/dash/me", headers=old.headers()), 401, "expired")
    fresh = await signed_in(api, ws, "fresh@acme.example")
    assert (await api.client.get("/api/dash/me", headers=fresh.headers())).status_code == 200


async def test_channel_forms_follow_the_config_structs(api: Api, ws: Workspace) -> None:
    viewer = await signed_in(api, ws, "viewer@acme.example", role="viewer")
    r = await api.client.get("/api/dash/channel-forms", headers=viewer.headers())
    assert r.status_code == 200, r.text
    forms = {f["type"]: {x["name"]: x for x in f["fields"]} for f in r.json()["forms"]}
    assert set(forms) == {
        "discord", "slack", "email", "sms", "pagerduty", "opsgenie", "webhook", "teams",
        "telegram", "grafana", "datadog", "prometheus",
    }  # fmt: skip
    hook = forms["webhook"]
    assert (hook["url"]["kind"], hook["url"]["required"], hook["url"]["secret"]) == (
        "text", True, False,
    )  # fmt: skip
    assert (hook["secret"]["required"], hook["secret"]["secret"]) == (True, True)
    assert hook["signature_header"]["default"] == "X-Signature-256"
    assert set(hook["min_severity"]["options"]) == {"low", "medium", "high", "critical"}
    email = forms["email"]
    assert email["from"]["required"] and email["to"]["kind"] == "list"
    assert email["port"] == {
        "name": "port", "kind": "number", "required": False, "secret": False, "options": [],
        "default": "587",
    }  # fmt: skip
