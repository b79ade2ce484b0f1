"""Handler parameter types for the app's named dependencies (see `control.app`).

Litestar injects by parameter name; marking them explicitly keeps the injection from
depending on inference (deprecated in Litestar 2.23, removed in 3.0).
"""

from __future__ import annotations

from typing import TypeAlias

import aiosqlite
from litestar.di import NamedDependency

from control.incidents.service import IncidentService
from control.nodes.service import NodeStatusPolicy
from control.workspace.service import Caller

Db: TypeAlias = NamedDependency[aiosqlite.Connection]
CallerDep: TypeAlias = NamedDependency[Caller]
NodePolicyDep: TypeAlias = NamedDependency[NodeStatusPolicy]
IncidentsDep: TypeAlias = NamedDependency[IncidentService]
