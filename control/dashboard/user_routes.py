"""/api/dash/users: a workspace admin lists, adds, re-roles and removes the workspace's users.

Every route is admin-only (changes need the CSRF token, like every change) and scoped to
the session's workspace: another workspace's user id answers 404. A password is set once
at creation (given, or made here and answered that once); changing it is the user's
`ftcontrol user passwd`. An admin changes and removes others, never themselves (another
admin can): so a workspace always keeps the admin who acted, and nobody locks themselves
out by a slip. (The service also refuses to demote or remove a workspace's last admin.)
"""

from __future__ import annotations

import secrets
from typing import Any

from litestar import Request, delete, get, patch, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from control.core.api_types import ErrorBody, Ok, RowId
from control.core.deps import CallerDep, Db
from control.core.errors import Conflict
from control.dashboard import users
from control.dashboard.auth import ADMIN_ONLY, session_of
from control.dashboard.schemas import UserCreate, UserCreated, UserList, UserOne, UserRoleChange

CONFLICT = {
    409: ResponseSpec(
        data_container=ErrorBody,
        description="The e-mail is taken, or the change would touch the caller themselves",
        generate_examples=False,
    )
}


def _not_yourself(request: Request[Any, Any, Any], user_id: int) -> None:
    if session_of(request).user.user_id == user_id:
        raise Conflict("you cannot change your own role or remove yourself: another admin can")


@get("/users", tags=["dashboard"], summary="The workspace's users (admin)", opt={ADMIN_ONLY: True})
async def list_users(caller: CallerDep, db: Db) -> UserList:
    return UserList(ok=True, users=await users.list_users(db, caller.workspace_id))


@post(
    "/users",
    status_code=201,
    tags=["dashboard"],
    summary="Add a user to the workspace (admin)",
    responses=CONFLICT,
)
async def create_user(data: JSONBody[UserCreate], caller: CallerDep, db: Db) -> UserCreated:
    given = data.password is not None
    password = data.password if data.password is not None else secrets.token_urlsafe(15)
    user = await users.create_user(db, data.email, caller.workspace_name, data.role, password)
    item = await users.get_user(db, caller.workspace_id, user.user_id)
    # A made password (120 bits) is answered this once; a given one is never echoed.
    return UserCreated(ok=True, user=item, password=None if given else password)


@patch(
    "/users/{user_id:int}",
    tags=["dashboard"],
    summary="Change another user's role (admin)",
    responses=CONFLICT,
)
async def change_role(
    user_id: RowId,
    data: JSONBody[UserRoleChange],
    caller: CallerDep,
    db: Db,
    request: Request[Any, Any, Any],
) -> UserOne:
    _not_yourself(request, user_id)
    return UserOne(ok=True, user=await users.set_role(db, caller.workspace_id, user_id, data.role))


@delete(
    "/users/{user_id:int}",
    status_code=200,
    tags=["dashboard"],
    summary="Remove another user and their sessions (admin)",
    responses=CONFLICT,
)
async def remove_user(
    user_id: RowId, caller: CallerDep, db: Db, request: Request[Any, Any, Any]
) -> Ok:
    _not_yourself(request, user_id)
    await users.remove_user(db, caller.workspace_id, user_id)
    return Ok(ok=True)


USER_ROUTES = [list_users, create_user, change_role, remove_user]
