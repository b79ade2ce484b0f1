"""REST API v1 workspace: the caller's workspace, its plan and subscription."""

from __future__ import annotations

import msgspec
from litestar import get

from control.core.deps import CallerDep, Db
from control.workspace.schemas import Workspace
from control.workspace.service import describe


class WorkspaceOne(msgspec.Struct, kw_only=True):
    ok: bool
    workspace: Workspace


@get("/workspace", tags=["workspace"], summary="Workspace plan, node count and subscription")
async def get_workspace(caller: CallerDep, db: Db) -> WorkspaceOne:
    return WorkspaceOne(ok=True, workspace=await describe(db, caller.workspace_id))
