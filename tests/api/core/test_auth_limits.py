"""Authentication hardening: failed attempts limited per source address (429 with
Retry-After), secrets never in the logs, each credential only on its own API."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from litestar.routes import HTTPRoute
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.core.ratelimit import FailureLimiter
from tests.api.agentapi.conftest import settings_for
from tests.api.conftest import Api, assert_error
from tests.api.served import Served, served_control
from tests.capability import require_root

WRONG = "f" * 64


# ---- the limiter itself (its clock is a parameter: a counter stands in for time) -------


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_limiter_sliding_window_per_source() -> None:
    clock = Clock()
    limiter = FailureLimiter(3, 10.0, clock=clock)
    for _ in range(3):
        assert limiter.retry_after("a") is None
        limiter.failed("a")
        clock.t += 1
    wait = limiter.retry_after("a")
    assert wait is not None and wait == pytest.approx(7.0)  # first failure ages out at +10
    assert limiter.retry_after("b") is None  # another address is not affected
    clock.t += 7.01
    assert limiter.retry_after("a") is None  # one failure aged out: one more try
    limiter.failed("a")
    assert limiter.retry_after("a") == pytest.approx(1.0, abs=0.02)


def test_limiter_memory_is_bounded() -> None:
    limiter = FailureLimiter(1, 60.0, max_sources=100)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 256}.{i % 256}")
    assert len(limiter._failures) == 100
    assert limiter.retry_after("10.0.3.231") is not None  # the newest are kept
    with pytest.raises(ValueError):
        FailureLimiter(0, 60.0)


# ---- in the app --------------------------------------------------------------------------


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path), auth_max_failures=5, auth_window_s=60.0)
    app.state.agentapi_settings = settings_for(tmp_path)
    async with AsyncTestClient(app) as client:
        yield Api(app=app, client=client, db_path=db_path)


async def test_failures_lead_to_429_with_retry_after_for_every_credential(api: Api) -> None:
    ws = await api.workspace("acme", "pro")
    bad = {"Authorization": f"Bearer {WRONG}"}
    for _ in range(5):
        assert_error(await api.client.get("/api/v1/nodes", headers=bad), 401)
    r = await api.client.get("/api/v1/nodes", headers=bad)
    body = assert_error(r, 429, "too many failed authentication attempts")
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert str(int(r.headers["retry-after"])) in body["error"]
    # Blocked means blocked: the right token gets no answer about itself either ...
    assert_error(await api.client.get("/api/v1/nodes", headers=ws.headers), 429)
    # ... nor does a node key on the Agent API, nor the Deploy API.
    node_headers = {"Authorization": f"Bearer {WRONG}", "X-Node-UUID": str(uuid.uuid4())}
    assert_error(await api.client.get("/api/v1/agent/config", headers=node_headers), 429)
    deploy = {"name": "n", "ip": "192.0.2.1"}
    assert_error(await api.client.post("/api/deploy", json=deploy, headers=ws.headers), 429)
    # Without credentials there is no attempt to refuse: plain 401; health stays open.
    assert_error(await api.client.get("/api/v1/nodes"), 401)
    assert (await api.client.get("/api/health")).status_code == 200
    assert api.app.state.auth_limiter.refused == 4
    # Nothing was created by the refused deploy.
    assert (await api.get("/api/v1/nodes", ws)).status_code == 429


async def test_node_key_failures_count_too(api: Api) -> None:
    headers = {"Authorization": f"Bearer {WRONG}", "X-Node-UUID": str(uuid.uuid4())}
    for _ in range(5):
        assert_error(await api.client.get("/api/v1/agent/config", headers=headers), 401)
    assert_error(await api.client.get("/api/v1/agent/config", headers=headers), 429)


async def test_successes_do_not_count(api: Api) -> None:
    ws = await api.workspace("acme", "pro")
    for _ in range(20):
        assert (await api.get("/api/v1/nodes", ws)).status_code == 200
    for _ in range(4):
        r = await api.client.get("/api/v1/nodes", headers={"Authorization": "Bearer x"})
        assert_error(r, 401)
    assert (await api.get("/api/v1/nodes", ws)).status_code == 200


# ---- each credential only on its own API --------------------------------------------------


async def test_node_key_only_on_agent_api_and_deploy_token_only_on_rest(api: Api) -> None:
    ws = await api.workspace("acme", "pro")
    body = {"name": "edge", "ip": "192.0.2.7"}
    r = await api.client.post("/api/deploy", json=body, headers=ws.headers)
    assert r.status_code == 200
    node_uuid, key = r.json()["node_uuid"], r.json()["api_key"]
    node_key = {"Authorization": f"Bearer {key}", "X-Node-UUID": node_uuid}
    # The deploy token as if it were this node's key (with the right node UUID).
    token_as_key = {"Authorization": f"Bearer {ws.token}", "X-Node-UUID": node_uuid}
    fake = {"node_uuid": node_uuid, "incident_uuid": str(uuid.uuid4()), "channel_id": "1",
            "rule_id": "1", "announcement_id": "1", "user_id": "1"}  # fmt: skip
    checked = 0
    # The limiter would stop this walk half way; every refusal here is expected.
    api.app.state.auth_limiter.max_failures = 10_000
    for route in api.app.routes:
        # dashboard page shells hold no data; sign-in takes e-mail and password only; the
        # node installer and its wheel are open; the root only sends a browser to /dash
        open_paths = ("/schema", "/api/health", "/metrics", "/dash", "/api/dash/login", "/install")
        if (
            not isinstance(route, HTTPRoute)
            or route.path_format.startswith(open_paths)
            or route.path_format == "/"
        ):
            continue
        url = route.path_format.format(**fake)
        agent_route = url.startswith("/api/v1/agent/")
        wrong = token_as_key if agent_route else node_key
        for method in route.methods - {"OPTIONS", "HEAD"}:
            if url.endswith("/pcap") and method == "POST":
                pcap = b"\xd4\xc3\xb2\xa1" + bytes(20)
                files = {"file": ("c.pcap", pcap, "application/octet-stream")}
                r = await api.client.post(url, files=files, headers=wrong)
            else:
                payload: dict[str, str] | None = {} if method in ("POST", "PUT", "PATCH") else None
                r = await api.client.request(method, url, json=payload, headers=wrong)
            assert_error(r, 401)
            checked += 1
    assert checked >= 30
    # And each works where it belongs.
    assert (await api.client.get("/api/v1/agent/config", headers=node_key)).status_code == 200
    assert (await api.get(f"/api/v1/nodes/{node_uuid}", ws)).status_code == 200


# ---- a real server: per-address limit and what reaches the log ----------------------------


# The window is long enough that a loaded machine (a request may take a second under a
# full test run) still lands every failure inside it; the test that waits for the window
# to lift waits this long.
AUTH_WINDOW_S = 5


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    # In a namespace of its own: the channel test sends below must not leave the machine.
    require_root()
    window = ["--auth-window", str(AUTH_WINDOW_S)]
    # debug: the per-request lines too, so the log checks cover everything it can write
    args = ["--auth-max-failures", "4", *window, "--log-level", "debug"]
    with served_control(tmp_path, isolated=True, extra_args=args) as srv:
        yield srv


def _from(address: str) -> dict[str, str]:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1 (its default --forwarded-allow-ips),
    # which is how a reverse proxy in front of ftcontrol passes the client's address.
    return {"X-Forwarded-For": address}


def test_limit_is_per_address_and_lifts_after_the_window(served: Served) -> None:
    ws = served.workspace("acme")
    served.start()
    bad = {"Authorization": f"Bearer {WRONG}"}
    for _ in range(4):
        r = served.request("GET", "/api/v1/nodes", headers={**bad, **_from("192.0.2.1")})
        assert r.status_code == 401
    limited = served.request("GET", "/api/v1/nodes", headers={**ws.headers, **_from("192.0.2.1")})
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= AUTH_WINDOW_S
    # Another address, same moment: unaffected.
    r = served.request("GET", "/api/v1/nodes", headers={**ws.headers, **_from("192.0.2.2")})
    assert r.status_code == 200
    time.sleep(AUTH_WINDOW_S + 0.2)  # every failure has left the window
    r = served.request("GET", "/api/v1/nodes", headers={**ws.headers, **_from("192.0.2.1")})
    assert r.status_code == 200


def test_secrets_never_reach_the_log(served: Served) -> None:
    ws = served.workspace("acme")
    served.start()
    node = served.node(ws, "edge-1")
    incident = served.incident(node)
    wrong_token = "abad1dea" * 8
    telegram_token = "123456:AAH-secret-bot-token-xyz"
    webhook_secret = "hook-secret-" + "9" * 20
    # Failed and successful requests of every kind, including a server-side failure path.
    served.request("GET", "/api/v1/nodes", headers={"Authorization": f"Bearer {wrong_token}"})
    served.request("GET", "/api/v1/nodes", headers={"Authorization": f"Basic {wrong_token}"})
    served.request("GET", f"/api/v1/incidents/{incident}", headers=ws.headers)
    served.request("POST", "/api/v1/agent/heartbeat", headers=node.headers,
                   json={"version": "1", "xdp_mode": "native"})  # fmt: skip
    served.request(
        "GET", "/api/v1/agent/config", headers={**node.headers, "Authorization": f"Bearer {WRONG}"}
    )
    for cfg, typ in (
        ({"bot_token": telegram_token, "chat_id": "42"}, "telegram"),
        ({"url": "http://127.0.0.1:9/h", "secret": webhook_secret}, "webhook"),
    ):
        r = served.request("POST", "/api/v1/channels", headers=ws.headers,
                           json={"name": typ, "type": typ, "config": cfg})  # fmt: skip
        assert r.status_code == 201, r.text
        # The test send fails (nothing listens / no route): its error goes to the log.
        channel = r.json()["channel"]["id"]
        served.request("POST", f"/api/v1/channels/{channel}/test", headers=ws.headers, timeout=30)
    # An incident now: both channels get deliveries, which fail and are logged and retried.
    served.incident(node)
    time.sleep(1.5)
    rotated = served.workspace("other")  # a second token, printed once by the CLI only
    served.request("GET", "/api/v1/nodes", headers=rotated.headers)
    served.stop()
    log = served.log.read_text(errors="replace")
    assert "GET /api/v1/nodes" in log  # the access log is there and was read
    for secret in (ws.token, rotated.token, node.api_key, wrong_token, WRONG, telegram_token,
                   webhook_secret, telegram_token.split(":")[1]):  # fmt: skip
        assert secret not in log, secret


def test_health_and_metrics_do_not_count_or_block(served: Served) -> None:
    served.start()
    bad = {"Authorization": f"Bearer {WRONG}", **_from("192.0.2.9")}
    for _ in range(6):
        served.request("GET", "/api/v1/workspace", headers=bad)
    assert served.request("GET", "/api/v1/workspace", headers=bad).status_code == 429
    assert served.request("GET", "/api/health", headers=bad).status_code == 200
    assert served.request("GET", "/metrics", headers=bad).status_code == 200
    metrics = served.request("GET", "/metrics").text
    assert 'status_code="429"' in metrics


# ---- rotation ---------------------------------------------------------------------------------


async def test_rotating_a_node_key_and_a_deploy_token(api: Api) -> None:
    import hashlib

    from control.workspace.service import rotate_token

    ws = await api.workspace("acme", "pro")
    r = await api.client.post("/api/deploy", json={"name": "e", "ip": "192.0.2.7"},
                              headers=ws.headers)  # fmt: skip
    node_uuid, old_key = r.json()["node_uuid"], r.json()["api_key"]

    def agent(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}", "X-Node-UUID": node_uuid}

    assert (await api.client.get("/api/v1/agent/config", headers=agent(old_key))).status_code == 200
    r = await api.client.post(f"/api/v1/nodes/{node_uuid}/rotate-key", headers=ws.headers)
    assert r.status_code == 200, r.text
    new_key = r.json()["api_key"]
    assert len(new_key) == 64 and new_key != old_key and r.json()["node_uuid"] == node_uuid
    assert_error(await api.client.get("/api/v1/agent/config", headers=agent(old_key)), 401)
    assert (await api.client.get("/api/v1/agent/config", headers=agent(new_key))).status_code == 200
    rows = await api.app.state.db.execute_fetchall(
        "SELECT api_key_hash FROM nodes WHERE uuid = ?", (node_uuid,)
    )
    assert rows[0][0] == hashlib.sha256(new_key.encode()).hexdigest()  # only the hash stored
    # A node key cannot rotate anything (REST is deploy-token only).
    r = await api.client.post(f"/api/v1/nodes/{node_uuid}/rotate-key", headers=agent(new_key))
    assert_error(r, 401)

    new_token = await rotate_token(api.app.state.db, "acme")
    assert_error(await api.client.get("/api/v1/nodes", headers=ws.headers), 401)
    ok = await api.client.get("/api/v1/nodes", headers={"Authorization": f"Bearer {new_token}"})
    assert ok.status_code == 200 and ok.json()["total"] == 1
    # Rotating the deploy token leaves the nodes' own keys alone.
    assert (await api.client.get("/api/v1/agent/config", headers=agent(new_key))).status_code == 200


# ---- where secrets live: file modes -----------------------------------------------------------


async def test_store_file_is_owner_only_whatever_the_umask(tmp_path: Path) -> None:
    import os
    import stat

    from control.core.db import open_db
    from control.workspace.service import create_workspace

    old = os.umask(0o022)
    try:
        fresh = tmp_path / "fresh.db"
        db = await open_db(fresh)
        try:
            await create_workspace(db, "acme", "pro")  # a write: the -wal file exists
            for path in (fresh, tmp_path / "fresh.db-wal", tmp_path / "fresh.db-shm"):
                assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        finally:
            await db.close()
        loose = tmp_path / "loose.db"
        loose.touch(mode=0o644)
        os.chmod(loose, 0o644)
        db = await open_db(loose)
        await db.close()
        assert stat.S_IMODE(loose.stat().st_mode) == 0o600
    finally:
        os.umask(old)


async def test_agent_credentials_are_checked_before_the_body_is_read(api: Api) -> None:
    """An unauthenticated client gets its 401 before the server parses what it sent."""
    bad = {"Authorization": f"Bearer {WRONG}", "X-Node-UUID": str(uuid.uuid4())}
    inc = str(uuid.uuid4())
    r = await api.client.post(
        f"/api/v1/agent/incidents/{inc}/pcap",
        content=b"--x\r\nnot a multipart body at all" * 1000,
        headers={**bad, "Content-Type": "multipart/form-data; boundary=x"},
    )
    assert_error(r, 401)
    r = await api.client.post(
        "/api/v1/agent/heartbeat",
        content=b"{not json" * 1000,
        headers={**bad, "Content-Type": "application/json"},
    )
    assert_error(r, 401)
