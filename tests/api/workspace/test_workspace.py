"""GET /api/v1/workspace and the `ftcontrol workspace` commands (run in-process)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.cli import main as cli_main
from tests.api.conftest import Api, Workspace, assert_error


async def test_workspace_info(api: Api, ws: Workspace) -> None:
    r = await api.get("/api/v1/workspace", ws)
    assert r.status_code == 200
    body = r.json()
    assert body["ok"] is True
    info = body["workspace"]
    assert {
        k: info[k] for k in ("name", "plan", "subscription_status", "node_count", "node_limit")
    } == {
        "name": "acme",
        "plan": "pro",
        "subscription_status": "active",
        "node_count": 0,
        "node_limit": 100,
    }
    a = await api.node(ws, "a")
    await api.node(ws, "b")
    await api.client.delete(f"/api/v1/nodes/{a['uuid']}", headers=ws.headers)
    assert (await api.get("/api/v1/workspace", ws)).json()["workspace"]["node_count"] == 1
    assert_error(await api.client.get("/api/v1/workspace"), 401)


def _token(out: str) -> str:
    token = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token), out
    return token


async def test_cli_workspace_lifecycle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "cli.db")

    def ftcontrol(argv: list[str]) -> int:
        # The CLI runs its own event loop (asyncio.run); keep it off this test's loop.
        future = ThreadPoolExecutor(1).submit(cli_main, argv)
        return future.result()

    assert ftcontrol(["workspace", "create", "acme", "--plan", "business", "--db", db]) == 0
    first = _token(capsys.readouterr().out)
    assert ftcontrol(["workspace", "create", "acme", "--db", db]) == 1
    assert "already exists" in capsys.readouterr().err
    assert ftcontrol(["workspace", "rotate-token", "acme", "--db", db]) == 0
    second = _token(capsys.readouterr().out)
    assert second != first
    assert ftcontrol(["workspace", "subscription", "acme", "past_due", "--db", db]) == 0
    assert ftcontrol(["workspace", "subscription", "nobody", "active", "--db", db]) == 1
    assert "not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ftcontrol(["workspace", "subscription", "acme", "paused", "--db", db])
    with pytest.raises(SystemExit):
        ftcontrol(["workspace", "create", "x", "--plan", "platinum", "--db", db])

    async with AsyncTestClient(create_app(db)) as client:
        old = await client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {first}"})
        assert_error(old, 401)
        new = await client.get("/api/v1/workspace", headers={"Authorization": f"Bearer {second}"})
        info = new.json()["workspace"]
        assert (info["plan"], info["node_limit"], info["subscription_status"]) == (
            "business",
            1000,
            "past_due",
        )
        r = await client.post(
            "/api/deploy",
            json={"name": "a", "ip": "192.0.2.1"},
            headers={"Authorization": f"Bearer {second}"},
        )
        assert_error(r, 402, "past_due")


def test_cli_default_db_is_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli_main(["workspace", "create", "acme"]) == 0
    _token(capsys.readouterr().out)
    assert (tmp_path / "ftcontrol.db").exists()
