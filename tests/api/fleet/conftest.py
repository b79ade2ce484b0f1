"""Fixtures for fleet detection through the real app (SQLite file, real Agent API): a
workspace of simulated nodes posting one-second points as agents do. The seconds are
replayed faster than real time: the engine's clock is the test's (`SimClock`), and its
evaluation is run by the test (`Fleet.tick`; the background loop's period is set long),
so that each second is evaluated once all its points are in, or once its grace is over.

The app runs in the test's own event loop (its lifespan, and an httpx ASGI client):
requests are truly concurrent, so a long-poll can be held while others go on."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from control.app import create_app
from control.bgp.lifespan import BgpSettings
from control.fleet.engine import FleetEngine
from control.fleet.lifespan import fleet_of
from control.fleet.settings import FleetSettings
from control.incidents.event_bus import IncidentEvent
from control.workspace.service import create_workspace
from ftcontract.agent_api import MetricPoint
from tests.api.agentapi.conftest import Agent, settings_for
from tests.api.conftest import Workspace

SETTINGS = FleetSettings(
    tick_s=3600.0,  # the test ticks
    refresh_s=0.001,  # membership re-read on every tick
    min_samples=20,
    confirm_s=2,
    cooldown_s=3,
    baseline_save_s=3600.0,
)

Point = Callable[[int], MetricPoint]


@dataclass
class SimClock:
    """The fleet engine's wall clock: starts 100 s in the past (the Agent API takes
    points up to 5 minutes ahead of real time, the engine keeps 120 s)."""

    now: float = field(default_factory=lambda: math.floor(time.time()) - 100.0)

    def __call__(self) -> float:
        return self.now


@dataclass
class Api:
    app: Litestar
    client: httpx.AsyncClient
    db_path: Path
    events: list[IncidentEvent] = field(default_factory=list)

    async def workspace(self, name: str, plan: str = "pro") -> Workspace:
        workspace_id, token = await create_workspace(self.app.state.db, name, plan)
        return Workspace(id=workspace_id, name=name, token=token)

    async def get(self, path: str, ws: Workspace, **params: Any) -> httpx.Response:
        return await self.client.get(path, headers=ws.headers, params=params)


@asynccontextmanager
async def in_own_task(app: Litestar) -> AsyncIterator[None]:
    """The app's lifespan entered and left in one task of its own (its cancel scopes must
    be; a fixture's setup and teardown run in different tasks)."""
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # the lifespan failed: raise its error
    try:
        yield
    finally:
        stop.set()
        await task


@asynccontextmanager
async def running(
    tmp_path: Path,
    settings: FleetSettings = SETTINGS,
    clock: Callable[[], float] | None = None,
    bgp: BgpSettings | None = None,
) -> AsyncIterator[Api]:
    """The app on tmp_path/ftcontrol.db (a second call: the same store, restarted)."""
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path), fleet=settings, bgp=bgp)
    app.state.agentapi_settings = settings_for(tmp_path)
    app.state.fleet_clock = clock or SimClock()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]  # ASGI typed apart
    async with (
        in_own_task(app),
        httpx.AsyncClient(transport=transport, base_url="http://testserver") as client,
    ):
        api = Api(app=app, client=client, db_path=db_path)

        async def record(event: IncidentEvent) -> None:
            api.events.append(event)

        app.state.events.subscribe(record)
        yield api


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    async with running(tmp_path) as a:
        yield a


@pytest.fixture
async def ws(api: Api) -> Workspace:
    return await api.workspace("acme")


@pytest.fixture
async def other(api: Api) -> Workspace:
    return await api.workspace("globex")


async def deploy(api: Api, ws: Workspace, name: str, ip: str) -> Agent:
    r = await api.client.post("/api/deploy", json={"name": name, "ip": ip}, headers=ws.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return Agent(uuid=body["node_uuid"], api_key=body["api_key"], name=name)


def quiet(second: int, scale: float = 1.0) -> MetricPoint:
    """A node's ordinary second: web traffic and a little DNS."""
    return MetricPoint(
        ts=float(second),
        pps=500.0 * scale,
        bps=500.0 * scale * 8 * 600,
        protocols={"tcp": 400.0 * scale, "udp": 100.0 * scale},
        tcp_flags={"ack": 300.0 * scale, "syn": 20.0 * scale},
        udp_ports={"53": 30.0 * scale, "other": 70.0 * scale},
    )


def dns_amplification(second: int, attack_pps: float = 900.0) -> MetricPoint:
    """The ordinary second plus DNS answers from sport 53 (below an agent's 1,000 pps
    per-port floor on every node)."""
    p = quiet(second)
    return msgspec.structs.replace(
        p,
        pps=p.pps + attack_pps,
        bps=p.bps + attack_pps * 8 * 1200,
        protocols={**p.protocols, "udp": p.protocols["udp"] + attack_pps},
        udp_ports={**p.udp_ports, "53": p.udp_ports["53"] + attack_pps},
    )


@dataclass
class Fleet:
    api: Api
    ws: Workspace
    nodes: list[Agent] = field(default_factory=list)

    @property
    def engine(self) -> FleetEngine:
        return fleet_of(self.api.app.state)

    @property
    def clock(self) -> SimClock:
        clock: SimClock = self.api.app.state.fleet_clock
        return clock

    @property
    def second(self) -> int:
        """The second being posted (the engine's clock is inside it)."""
        return math.floor(self.clock.now)

    async def post(self, agent: Agent, *points: MetricPoint) -> dict[str, Any]:
        r = await self.api.client.post(
            "/api/v1/agent/metrics",
            json={"points": [msgspec.to_builtins(p) for p in points]},
            headers=agent.headers,
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def seconds(self, n: int, make: Point, nodes: list[Agent] | None = None) -> None:
        """n more seconds, every node (or `nodes`) posting its point of each; each second
        is evaluated once all its points are in."""
        for _ in range(n):
            self.clock.now = self.second + 0.2
            for agent in self.nodes if nodes is None else nodes:
                await self.post(agent, make(self.second))
            await self.tick()
            self.clock.now = self.second + 1.0

    async def tick(self) -> None:
        await self.engine.tick()

    async def after_grace(self) -> None:
        """Let the grace of every second posted so far run out, and evaluate."""
        self.clock.now += self.engine.settings.grace_s + 0.1
        await self.tick()

    async def orders(self, agent: Agent, **params: Any) -> dict[str, Any]:
        r = await self.api.client.get("/api/v1/agent/fleet", params=params, headers=agent.headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def fleet_incidents(self) -> list[dict[str, Any]]:
        r = await self.api.get("/api/v1/incidents", self.ws, scope="fleet")
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["incidents"]
        return items


async def make_fleet(api: Api, ws: Workspace, n: int = 8) -> Fleet:
    fleet = Fleet(api, ws)
    for i in range(n):
        fleet.nodes.append(await deploy(api, ws, f"edge-{i}", f"203.0.113.{10 + i}"))
    await fleet.tick()  # the engine learns the members
    return fleet


@pytest.fixture
async def fleet(api: Api, ws: Workspace) -> Fleet:
    return await make_fleet(api, ws)
