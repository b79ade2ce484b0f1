"""Request and response bodies of the dashboard's own /api/dash/* routes."""

from __future__ import annotations

import msgspec

from control.dashboard.channel_forms import ChannelForm
from control.dashboard.users import Role, UserItem


class LoginRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    email: str
    password: str


class Me(msgspec.Struct, kw_only=True):
    """The signed-in user, and the CSRF token their page sends with every change."""

    ok: bool
    email: str
    role: Role
    workspace: str
    csrf_token: str


class UserList(msgspec.Struct, kw_only=True):
    ok: bool
    users: list[UserItem]


class NewDeployToken(msgspec.Struct, kw_only=True):
    """The new deploy token, shown this once (only its hash is stored)."""

    ok: bool
    token: str


class ChannelForms(msgspec.Struct, kw_only=True):
    ok: bool
    forms: list[ChannelForm]


class UserCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new user of the caller's workspace. Without a password, one is made and answered
    this once (only its hash is stored)."""

    email: str
    role: Role = "viewer"
    password: str | None = None


class UserRoleChange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    role: Role


class UserCreated(msgspec.Struct, kw_only=True):
    ok: bool
    user: UserItem
    password: str | None  # the made password, shown this once; None when it was given


class UserOne(msgspec.Struct, kw_only=True):
    ok: bool
    user: UserItem
