"""/api/dash/users: a workspace admin lists, adds, re-roles and removes users.

(401 without a session, 403 without the CSRF token and for viewers: test_sessions.py asks
every /api/dash route; another workspace's user ids: tests/api/test_isolation_matrix.py.)
"""

from __future__ import annotations

import pytest

from control.core.errors import Conflict
from control.dashboard import users as dash_users
from tests.api.conftest import Api, Workspace, assert_error
from tests.api.dashboard.dash import PASSWORD, login, signed_in


async def test_admin_adds_a_user_with_a_given_or_a_made_password(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    given = await api.client.post(
        "/api/dash/users",
        json={"email": "ops@acme.example", "role": "viewer", "password": "ops password 1"},
        headers=admin.headers(),
    )
    assert given.status_code == 201, given.text
    body = given.json()
    assert body["password"] is None  # a given password is never echoed
    assert (body["user"]["email"], body["user"]["role"]) == ("ops@acme.example", "viewer")
    ops = await login(api, "ops@acme.example", "ops password 1")
    me = (await api.client.get("/api/dash/me", headers=ops.headers())).json()
    assert (me["role"], me["workspace"]) == ("viewer", "acme")

    made = await api.client.post(
        "/api/dash/users", json={"email": "lead@acme.example"}, headers=admin.headers()
    )
    assert made.status_code == 201, made.text
    password = made.json()["password"]
    assert isinstance(password, str) and len(password) >= 20
    assert made.json()["user"]["role"] == "viewer"  # the default role
    await login(api, "lead@acme.example", password)
    listed = await api.client.get("/api/dash/users", headers=admin.headers())
    rows = listed.json()["users"]
    assert [u["email"] for u in rows] == ["admin@acme.example", "lead@acme.example",
                                          "ops@acme.example"]  # fmt: skip
    assert "password" not in listed.text and all(isinstance(u["id"], int) for u in rows)


async def test_bad_new_users_are_refused_naming_the_field(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    for body, field in (
        ({"email": "not-an-address"}, "email"),
        ({"email": "a@acme.example", "password": "short"}, "password"),
        ({"email": "a@acme.example", "role": "owner"}, "role"),
        ({"email": "a@acme.example", "shoe_size": 44}, "shoe_size"),
    ):
        r = await api.client.post("/api/dash/users", json=body, headers=admin.headers())
        assert_error(r, 400, field)
    again = await api.client.post(
        "/api/dash/users", json={"email": "ADMIN@acme.example"}, headers=admin.headers()
    )
    assert_error(again, 409, "already exists")
    users = (await api.client.get("/api/dash/users", headers=admin.headers())).json()["users"]
    assert [u["email"] for u in users] == ["admin@acme.example"]  # nothing half-made


async def test_role_changes_take_effect_at_once(api: Api, ws: Workspace) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    viewer = await signed_in(api, ws, "viewer@acme.example", role="viewer")
    users = (await api.client.get("/api/dash/users", headers=admin.headers())).json()["users"]
    ids = {u["email"]: u["id"] for u in users}
    promoted = await api.client.patch(
        f"/api/dash/users/{ids['viewer@acme.example']}",
        json={"role": "admin"},
        headers=admin.headers(),
    )
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["user"]["role"] == "admin"
    # The promoted user's open session may now change things (the role is read per request).
    now_admin = await api.client.get("/api/dash/users", headers=viewer.headers())
    assert now_admin.status_code == 200, now_admin.text
    bad = await api.client.patch(
        f"/api/dash/users/{ids['viewer@acme.example']}",
        json={"role": "root"},
        headers=admin.headers(),
    )
    assert_error(bad, 400, "role")
    demoted = await api.client.patch(
        f"/api/dash/users/{ids['admin@acme.example']}",
        json={"role": "viewer"},
        headers=viewer.headers(),
    )
    assert demoted.status_code == 200, demoted.text
    assert_error(await api.client.get("/api/dash/users", headers=admin.headers()), 403, "admin")


async def test_admins_never_touch_themselves_and_a_removed_user_is_signed_out(
    api: Api, ws: Workspace
) -> None:
    admin = await signed_in(api, ws, "admin@acme.example")
    viewer = await signed_in(api, ws, "viewer@acme.example", role="viewer")
    users = (await api.client.get("/api/dash/users", headers=admin.headers())).json()["users"]
    ids = {u["email"]: u["id"] for u in users}
    me = ids["admin@acme.example"]
    self_demote = await api.client.patch(
        f"/api/dash/users/{me}", json={"role": "viewer"}, headers=admin.headers()
    )
    assert_error(self_demote, 409, "another admin")
    self_remove = await api.client.delete(f"/api/dash/users/{me}", headers=admin.headers())
    assert_error(self_remove, 409, "another admin")
    gone = await api.client.delete(
        f"/api/dash/users/{ids['viewer@acme.example']}", headers=admin.headers()
    )
    assert gone.status_code == 200 and gone.json() == {"ok": True}
    assert_error(await api.client.get("/api/dash/me", headers=viewer.headers()), 401)
    refused = await api.client.post(
        "/api/dash/login", json={"email": "viewer@acme.example", "password": PASSWORD}
    )
    assert_error(refused, 401)
    again = await api.client.delete(
        f"/api/dash/users/{ids['viewer@acme.example']}", headers=admin.headers()
    )
    assert_error(again, 404)


async def test_the_service_keeps_a_workspaces_last_admin(api: Api, ws: Workspace) -> None:
    """Whoever calls it (a future CLI or route): the last admin is neither demoted nor
    removed, so the workspace can always be administered."""
    db = api.app.state.db
    admin = await dash_users.create_user(db, "admin@acme.example", ws.name, "admin", PASSWORD)
    with pytest.raises(Conflict, match="last admin"):
        await dash_users.set_role(db, admin.workspace_id, admin.user_id, "viewer")
    with pytest.raises(Conflict, match="last admin"):
        await dash_users.remove_user(db, admin.workspace_id, admin.user_id)
    other = await dash_users.create_user(db, "two@acme.example", ws.name, "admin", PASSWORD)
    demoted = await dash_users.set_role(db, admin.workspace_id, admin.user_id, "viewer")
    assert demoted.role == "viewer"
    with pytest.raises(Conflict, match="last admin"):
        await dash_users.remove_user(db, other.workspace_id, other.user_id)


@pytest.mark.parametrize("user_id", [0, 2**63, 854659498297166466646016])
async def test_user_ids_sqlite_cannot_hold_are_400_naming_the_id(
    api: Api, ws: Workspace, user_id: int
) -> None:
    # Found by the schemathesis run: an id past SQLite's 64 bits reached the driver (500).
    admin = await signed_in(api, ws, "admin@acme.example")
    removed = await api.client.delete(f"/api/dash/users/{user_id}", headers=admin.headers())
    assert_error(removed, 400, "user_id")
    changed = await api.client.patch(
        f"/api/dash/users/{user_id}", json={"role": "viewer"}, headers=admin.headers()
    )
    assert_error(changed, 400, "user_id")
