"""The product against the BGP lab: the control plane app in-process with its BGP engine
(ExaBGP in the lab's speaker namespace, BIRD as the upstream router), driven only through
the REST API and the Agent API with real credentials."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.bgp import prefixes
from control.bgp.lifespan import BgpSettings
from control.workspace.service import create_workspace
from lab.bird import PROTOCOL, BgpLab
from tests.api.agentapi.conftest import settings_for
from tests.bgp.daemons import eventually

DECLARED = ("203.0.113.0/24", "2001:db8:5::/48")
UDP_AMPLIFICATION = {
    "kind": "signature",
    "match": "udp sport 11211",
    "proto": 17,
    "src_port": 11211,
}


@dataclass
class Node:
    uuid: str
    key: str

    @property
    def agent(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "X-Node-UUID": self.uuid}


@dataclass
class Product:
    app: Litestar
    client: AsyncTestClient[Litestar]
    token: str
    db_path: Path

    @property
    def rest(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def call(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = await self.client.request(method, path, headers=self.rest, **kw)
        assert r.status_code == status, (method, path, r.status_code, r.text)
        return r.json()

    async def node(self, name: str, ip: str, **patch: Any) -> Node:
        r = await self.client.post("/api/deploy", json={"name": name, "ip": ip}, headers=self.rest)
        assert r.status_code == 200, r.text
        node = Node(r.json()["node_uuid"], r.json()["api_key"])
        if patch:
            await self.call("PATCH", f"/api/v1/nodes/{node.uuid}", json=patch)
        return node

    async def incident(
        self, node: Node, *rules: dict[str, Any], peak_bps: float = 2e9, burst_bps: float = 0.0
    ) -> str:
        """An incident opened by the node's agent, with its rules' structured fields and
        its peaks so far (one-second `peak_bps`, one-window `burst_bps`)."""
        incident = str(uuid.uuid4())
        figures = {"seq": 1, "family": "memcached_amplification", "severity": "critical",
                   "peak_pps": peak_bps / 8000, "peak_bps": peak_bps,
                   "peak_burst_pps": burst_bps / 8000, "peak_burst_bps": burst_bps,
                   "rules": list(rules)}  # fmt: skip
        r = await self.client.post(
            "/api/v1/agent/incidents",
            json={"uuid": incident, "started_at": time.time() - 2, "figures": figures},
            headers=node.agent,
        )
        assert r.status_code == 201, r.text
        return incident

    async def metrics(self, node: Node, bps: float, *, saturated: bool = False) -> None:
        point = {"ts": time.time(), "pps": bps / 8000, "bps": bps, "attack": True,
                 "link_saturated": saturated}  # fmt: skip
        r = await self.client.post(
            "/api/v1/agent/metrics", json={"points": [point]}, headers=node.agent
        )
        assert r.status_code == 200, r.text

    async def resolve(self, node: Node, incident: str) -> None:
        body = {"ended_at": time.time(), "figures": {"seq": 9, "family": "udp_flood"}}
        r = await self.client.post(
            f"/api/v1/agent/incidents/{incident}/resolve", json=body, headers=node.agent
        )
        assert r.status_code == 200, r.text

    async def escalate(self, incident: str, action: str, status: int = 200) -> Any:
        return await self.call(
            "POST", f"/api/v1/incidents/{incident}/escalate", status, json={"action": action}
        )

    async def announcements(self, **params: Any) -> list[dict[str, Any]]:
        body = await self.call("GET", "/api/v1/bgp/announcements", params=params)
        found: list[dict[str, Any]] = body["announcements"]
        return found


@contextlib.asynccontextmanager
async def running_product(
    lab: BgpLab,
    tmp_path: Path,
    workdir: Path,
    *,
    token: str | None = None,
    **config: object,
) -> AsyncIterator[Product]:
    """The app with its engine; yields once BIRD has the session Established. A first run
    (token None) makes the workspace "acme" with DECLARED; a later one reuses the db."""
    db_path = tmp_path / "ftcontrol.db"
    settings = BgpSettings(
        config=lab.speaker_config(**config),
        workdir=workdir,
        argv_prefix=tuple(lab.speaker_argv_prefix),
    )
    app = create_app(str(db_path), bgp=settings)
    app.state.agentapi_settings = settings_for(tmp_path)
    async with AsyncTestClient(app) as client:
        if token is None:
            _, token = await create_workspace(app.state.db, "acme", "pro")
            for prefix in DECLARED:
                await prefixes.add_prefix(app.state.db, "acme", prefix)
        product = Product(app, client, token, db_path)
        await eventually(lambda: lab.session_state(PROTOCOL) == "Established", "session up")

        async def peer_up() -> bool:
            peers = (await product.call("GET", "/api/v1/bgp/peers"))["peers"]
            return bool(peers[0]["state"] == "up")

        deadline = time.monotonic() + 30
        while not await peer_up():
            assert time.monotonic() < deadline, "the speaker never reported its peer up"
            await asyncio.sleep(0.05)
        yield product
