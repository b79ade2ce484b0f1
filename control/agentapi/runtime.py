"""The Agent API's services on `app.state.agentapi`, and the lifespan that runs its
background task (metrics writes, roll-ups, retention pruning, gauge refresh)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiosqlite
from litestar import Litestar
from litestar.datastructures import State

from control.agentapi.gauges import NodeGaugeCollector, collector, take_snapshot
from control.agentapi.incident_reports import IncidentReports
from control.agentapi.metrics_store import MetricsStore
from control.agentapi.pcaps import PcapStore
from control.agentapi.settings import AgentApiSettings

log = logging.getLogger("ftcontrol.agentapi")


@dataclass(slots=True)
class AgentApi:
    settings: AgentApiSettings
    data_dir: Path
    metrics: MetricsStore
    reports: IncidentReports
    pcaps: PcapStore
    gauges: NodeGaugeCollector


def agentapi_of(state: State) -> AgentApi:
    """The Agent API services the lifespan put on app.state."""
    api: AgentApi = state.agentapi
    return api


async def _db_file(db: aiosqlite.Connection) -> str:
    rows = await db.execute_fetchall("PRAGMA database_list")
    return next((str(r[2]) for r in rows if r[1] == "main"), "")


async def _refresh_gauges(db: aiosqlite.Connection, api: AgentApi) -> None:
    while True:
        try:
            api.gauges.publish(await take_snapshot(db))
        except Exception:
            log.exception("refreshing the node gauges failed")
        await asyncio.sleep(api.settings.gauges_interval_s)


@contextlib.asynccontextmanager
async def agentapi_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Runs after the store's lifespan (it needs app.state.db and .incidents)."""
    settings = app.state.get("agentapi_settings") or AgentApiSettings.from_env()
    db: aiosqlite.Connection = app.state.db
    data_dir = settings.resolve_data_dir(await _db_file(db))
    api = AgentApi(
        settings=settings,
        data_dir=data_dir,
        metrics=MetricsStore(db, settings),
        reports=IncidentReports(db, app.state.incidents),
        pcaps=PcapStore(db, data_dir, settings.pcap_max_bytes),
        gauges=collector(),
    )
    app.state.agentapi = api
    tasks = [
        asyncio.create_task(api.metrics.run(), name="agentapi-metrics"),
        asyncio.create_task(_refresh_gauges(db, api), name="agentapi-gauges"),
    ]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await api.metrics.close()  # accepted points reach the disk before the db closes
        except Exception:
            log.exception("final metrics flush failed")
