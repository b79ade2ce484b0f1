"""Fleet groups over REST and the CLI: each declared prefix of the workspace and
'workspace'; settings validated (400 naming the field); one workspace never sees nor sets
another's groups; --no-fleet (enabled=False) turns detection off."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest

from control import cli
from control.bgp import prefixes
from control.core.db import open_db
from control.workspace.service import create_workspace
from tests.api.conftest import Workspace, assert_error
from tests.api.fleet.conftest import (
    SETTINGS,
    Api,
    SimClock,
    dns_amplification,
    make_fleet,
    quiet,
    running,
)


async def groups(api: Api, ws: Workspace) -> dict[str, dict[str, Any]]:
    r = await api.get("/api/v1/fleet/groups", ws)
    assert r.status_code == 200, r.text
    return {g["key"]: g for g in r.json()["groups"]}


async def put(api: Api, ws: Workspace, body: dict[str, Any]) -> Any:
    return await api.client.put("/api/v1/fleet/groups", json=body, headers=ws.headers)


async def test_groups_are_the_declared_prefixes_and_the_workspace(api: Api, ws: Workspace) -> None:
    await prefixes.add_prefix(api.app.state.db, ws.name, "203.0.113.0/25")
    await make_fleet(api, ws, 3)  # 203.0.113.10 .. .12: inside the /25
    found = await groups(api, ws)
    assert set(found) == {"203.0.113.0/25", "workspace"}
    assert found["203.0.113.0/25"]["members"] == 3
    assert found["203.0.113.0/25"]["prefix"] == "203.0.113.0/25"
    assert found["workspace"]["prefix"] is None and found["workspace"]["members"] == 3
    assert found["workspace"]["baseline"] == {"state": "learning", "samples": 0, "p99_pps": None}
    assert found["workspace"]["thresholds"]["floors"]["amp_pps"] == 3000.0
    assert found["workspace"]["active_incident"] is None


async def test_set_a_group_and_what_is_in_force(api: Api, ws: Workspace) -> None:
    await prefixes.add_prefix(api.app.state.db, ws.name, "203.0.113.0/24")
    r = await put(
        api,
        ws,
        {
            "group": "203.0.113.0/24",
            "uplink_mbps": 1000,
            "thresholds": {"multiplier": 4, "confirm_s": 3, "floors": {"amp_pps": 500}},
        },
    )
    assert r.status_code == 200, r.text
    group = r.json()["group"]
    assert group["uplink_mbps"] == 1000
    assert group["overrides"] == {"multiplier": 4.0, "confirm_s": 3, "floors": {"amp_pps": 500.0}}
    assert group["thresholds"]["multiplier"] == 4.0
    assert group["thresholds"]["floors"]["amp_pps"] == 500.0
    assert group["thresholds"]["floors"]["pps"] == 20000.0  # default kept
    # a field left out is kept; uplink null clears it
    r = await put(api, ws, {"group": "203.0.113.0/24", "uplink_mbps": None})
    assert r.json()["group"]["uplink_mbps"] is None
    assert r.json()["group"]["overrides"]["multiplier"] == 4.0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"group": "198.51.100.0/24"}, "group"),  # not declared by this workspace
        ({"group": "not-a-prefix"}, "group"),
        ({"group": "203.0.113.1/24"}, "group"),  # host bits
        ({"group": "workspace", "uplink_mbps": -1}, "uplink_mbps"),
        ({"group": "workspace", "thresholds": {"multiplier": 0.5}}, "thresholds.multiplier"),
        ({"group": "workspace", "thresholds": {"confirm_s": 0}}, "thresholds.confirm_s"),
        ({"group": "workspace", "thresholds": {"floors": {"bogus_pps": 1}}}, "thresholds.floors"),
        ({"group": "workspace", "thresholds": {"floors": {"pps": -1}}}, "thresholds.floors"),
        ({"group": "workspace", "thresholds": {"typo": 1}}, "thresholds"),
        ({"uplink_mbps": 5}, "group"),
    ],
)
async def test_bad_input_names_the_field(
    api: Api, ws: Workspace, body: dict[str, Any], field: str
) -> None:
    await prefixes.add_prefix(api.app.state.db, ws.name, "203.0.113.0/24")
    r = await put(api, ws, body)
    err = assert_error(r, 400, field.split(".")[0])
    assert field.split(".")[0] in (err.get("field") or "")
    assert (await groups(api, ws))["workspace"]["overrides"] == {}


async def test_workspaces_are_isolated(api: Api, ws: Workspace, other: Workspace) -> None:
    await prefixes.add_prefix(api.app.state.db, ws.name, "203.0.113.0/24")
    await prefixes.add_prefix(api.app.state.db, other.name, "198.51.100.0/24")
    await make_fleet(api, ws, 2)
    r = await put(api, ws, {"group": "workspace", "uplink_mbps": 100})
    assert r.status_code == 200
    # the other workspace sees its own groups only, with none of acme's settings or nodes
    theirs = await groups(api, other)
    assert set(theirs) == {"198.51.100.0/24", "workspace"}
    assert theirs["workspace"]["uplink_mbps"] is None
    assert theirs["workspace"]["members"] == 0
    # and cannot set acme's prefix
    assert_error(await put(api, other, {"group": "203.0.113.0/24", "uplink_mbps": 1}), 400, "group")
    assert (await groups(api, ws))["203.0.113.0/24"]["uplink_mbps"] is None
    r = await api.client.get("/api/v1/fleet/groups")
    assert r.status_code == 401


async def test_cli_lists_and_sets_groups(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db_file = str(tmp_path / "cli.db")
    db = await open_db(db_file)
    try:
        await create_workspace(db, "acme", "pro")
        await prefixes.add_prefix(db, "acme", "203.0.113.0/24")
    finally:
        await db.close()

    def run_cli(argv: list[str]) -> int:
        # the CLI runs its own event loop (asyncio.run): keep it off the test's
        code: int = ThreadPoolExecutor(1).submit(cli.main, argv).result()
        return code

    base = ["workspace", "groups", "acme"]
    first = ["set", "203.0.113.0/24", "--uplink-mbps", "2000", "--multiplier", "5"]
    assert run_cli([*base, *first, "--floor", "amp_pps=400", "--db", db_file]) == 0
    assert run_cli([*base, "set", "workspace", "--cooldown-s", "30", "--db", db_file]) == 0
    capsys.readouterr()
    assert run_cli([*base, "list", "--db", db_file]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        '203.0.113.0/24\tnodes=0\tuplink=2000 Mbps\toverrides={"multiplier":5.0,'
        '"floors":{"amp_pps":400.0}}',
        'workspace\tnodes=0\tuplink=-\toverrides={"cooldown_s":30.0}',
    ]
    # refused, naming what is wrong; nothing changed
    for bad in (
        ["set", "198.51.100.0/24", "--uplink-mbps", "1"],
        ["set", "workspace", "--multiplier", "0.5"],
        ["set", "workspace", "--floor", "nonsense=1"],
        ["set", "workspace", "--floor", "pps"],
        ["set", "workspace", "--uplink-mbps", "-3"],
        ["set"],
    ):
        assert run_cli([*base, *bad, "--db", db_file]) == 1, bad
    capsys.readouterr()
    assert run_cli([*base, "list", "--db", db_file]) == 0
    assert capsys.readouterr().out.splitlines() == lines


async def test_fleet_off_detects_nothing_but_answers_the_long_poll(tmp_path: Path) -> None:
    off = msgspec.structs.replace(SETTINGS, enabled=False)
    async with running(tmp_path, off, SimClock()) as api:
        ws = await api.workspace("acme")
        fleet = await make_fleet(api, ws, 8)
        await fleet.seconds(2, quiet)
        await fleet.seconds(3, dns_amplification)
        assert await fleet.fleet_incidents() == []
        body = await fleet.orders(fleet.nodes[0])
        assert body["orders"] == []
        assert (await groups(api, ws))["workspace"]["baseline"]["state"] == "off"
