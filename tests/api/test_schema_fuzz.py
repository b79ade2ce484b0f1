"""Schemathesis (v4) against /schema of a real `ftcontrol serve`: every operation, with a
valid deploy token / node key, with a wrong one and with none.

The server runs in a network namespace of its own with no default route: fuzzed channel
configs name arbitrary hosts, and a test send or a notification must not leave the
machine. Checks: no 5xx, every status documented, every body valid against its schema,
content types as documented. Each run is bounded (`-n` examples per operation and phase).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.api.served import Node, Served, Workspace, served_control
from tests.capability import require_root

pytestmark = pytest.mark.lab

ST = str(Path(sys.executable).with_name("st"))
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "response_schema_conformance",
        "content_type_conformance",
        "response_headers_conformance",
    )
)
WRONG_SECRET = "0123456789abcdef" * 4  # well-formed, matches nothing
AGENT = "^/api/v1/agent/"
HOOK = {"url": "http://127.0.0.1:9/h", "secret": "s" * 32}
DASH = "^/api/dash/"
DASH_PASSWORD = "correct horse battery"
# Left out of the session's run: sign-out would end the fuzzer's session half way, and a
# live stream never ends (it is read by the dashboard tests).
DASH_NOT_FUZZED = "^/api/dash/(logout|live.*)$"
BGP_CONFIG = """\
router_id = "127.0.0.1"
local_as = 64513
[listen]
address = "127.0.0.1"
port = 1790
[[peers]]
address = "127.0.0.2"
peer_as = 64512
port = 1791
"""


@dataclass
class Seeded:
    srv: Served
    alpha: Workspace
    beta: Workspace
    node: Node
    dash_user: str  # a dashboard admin of alpha


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    require_root()
    tmp = tmp_path_factory.mktemp("fuzz")
    # BGP configured, so the BGP routes run their real paths: ExaBGP runs in the server's
    # namespace; its peer (on the loopback, nothing listening) never comes up, and what
    # the fuzz announces stays in ExaBGP.
    (tmp / "bgp.toml").write_text(BGP_CONFIG)
    extra = ["--bgp-config", str(tmp / "bgp.toml"), "--bgp-workdir", str(tmp / "bgp")]
    # The fuzzer's wrong tokens must reach the app, not the failure limiter.
    with served_control(
        tmp, isolated=True, extra_args=["--auth-max-failures", "1000000", *extra]
    ) as srv:
        alpha, beta = srv.workspace("alpha"), srv.workspace("beta")
        done = subprocess.run(
            [sys.executable, "-m", "control.cli", "workspace", "prefixes", "alpha", "add",
             "203.0.113.0/24", "--db", str(srv.db)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        srv.start()
        # alpha's objects are the REST fuzz's to change (it may rotate keys, delete nodes);
        # the Agent API fuzz uses beta's node, which alpha's token cannot touch.
        incident = srv.incident(srv.node(alpha, "edge-1"))
        r = srv.request(
            "POST",
            f"/api/v1/incidents/{incident}/escalate",
            headers=alpha.headers,
            json={"action": "rtbh"},
        )
        assert r.status_code == 200, r.text  # one announcement in force for the fuzz to see
        r = srv.request("GET", "/api/v1/bgp/peers", headers=alpha.headers)
        assert r.status_code == 200 and r.json()["peers"][0]["state"] != "up", r.text
        node = srv.node(beta, "edge-b")
        srv.incident(node)
        r = srv.request(
            "POST",
            "/api/v1/channels",
            headers=alpha.headers,
            json={"name": "hook", "type": "webhook", "config": HOOK},
        )
        assert r.status_code == 201, r.text
        dash_user = "admin@alpha.example"
        done = subprocess.run(
            [sys.executable, "-m", "control.cli", "user", "create", dash_user,
             "--workspace", "alpha", "--role", "admin", "--db", str(srv.db)],
            input=DASH_PASSWORD, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        yield Seeded(srv, alpha, beta, node, dash_user)


@dataclass
class RunResult:
    returncode: int
    output: str
    requests: int
    statuses: Counter[int]
    failures: list[str]
    # (method, path) of every 2xx answer
    successes: list[tuple[str, str]]


def _schemathesis(s: Seeded, tmp: Path, headers: list[str], select: list[str], n: int) -> RunResult:
    events = tmp / "events.ndjson"
    argv = [
        ST, "run", f"{s.srv.base}/schema/openapi.json", *headers, *select,
        "--checks", CHECKS, "-n", str(n), "--workers", "1",
        "--continue-on-failure", "--max-failures", "1000",
        "--report", "ndjson", "--report-ndjson-path", str(events),
        "--request-timeout", "20",
    ]  # fmt: skip
    done = subprocess.run(
        s.srv.argv(argv), capture_output=True, text=True, timeout=240, check=False, cwd=tmp
    )
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    successes: list[tuple[str, str]] = []
    requests = 0
    for line in events.read_text().splitlines():
        event = json.loads(line)
        finished = event.get("ScenarioFinished")
        if not finished:
            continue
        recorder = finished["recorder"]
        for interaction in recorder.get("interactions", {}).values():
            requests += 1
            response = interaction.get("response")
            status = response["status_code"] if response else 0
            statuses[status] += 1
            if 200 <= status < 300:
                request = interaction["request"]
                successes.append((request["method"], urlsplit(request["uri"]).path))
        for case_checks in recorder.get("checks", {}).values():
            for check in case_checks:
                if check["status"] == "failure":
                    info = check.get("failure_info", {}).get("failure", {})
                    failures.append(f"{info.get('operation')}: {info.get('title')}")
    output = done.stdout + done.stderr
    return RunResult(done.returncode, output, requests, statuses, failures, successes)


# Changed by background work that earlier runs set going (roll-ups and retention pruning
# of posted points, retries of deliveries), not by requests: left out of the before/after
# comparison. The isolation matrix compares every table with no background work pending.
BACKGROUND_TABLES = {
    "node_metrics_raw",
    "node_metrics_minute",
    "notification_attempts",
    "notification_deliveries",
}


def table_counts(db: Path) -> dict[str, int]:
    """Rows per table (read-only connection next to the running server; WAL allows it)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {
            t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0]  # noqa: S608
            for t in tables
            if t not in BACKGROUND_TABLES
        }


def _report(what: str, result: RunResult) -> str:
    by_class = Counter(f"{code // 100}xx" for code in result.statuses.elements())
    return f"{what}: {result.requests} requests, {dict(sorted(by_class.items()))}"


@pytest.mark.parametrize(
    ("what", "examples"),
    [
        # examples per operation: enough for every route's bounds and shapes; more only
        # lengthen make test (the suite's 15-minute budget)
        ("deploy token", 15),
        ("node key", 15),
        ("wrong credentials", 8),
        ("no credentials", 8),
        # last: it may rotate alpha's deploy token
        ("dashboard session", 10),
    ],
)
def test_fuzz_finds_no_server_error_or_schema_break(
    seeded: Seeded, tmp_path: Path, what: str, examples: int
) -> None:
    node = seeded.node
    headers: list[str]
    select: list[str] = []
    if what == "deploy token":
        headers = ["-H", f"Authorization: Bearer {seeded.alpha.token}"]
        select = ["--exclude-path-regex", AGENT]
    elif what == "dashboard session":
        r = seeded.srv.request(
            "POST", "/api/dash/login", json={"email": seeded.dash_user, "password": DASH_PASSWORD}
        )
        assert r.status_code == 200, r.text
        cookie = r.headers["set-cookie"].split(";", 1)[0]
        headers = ["-H", f"Cookie: {cookie}", "-H", f"X-CSRF-Token: {r.json()['csrf_token']}"]
        select = ["--include-path-regex", DASH, "--exclude-path-regex", DASH_NOT_FUZZED]
    elif what == "node key":
        headers = ["-H", f"Authorization: Bearer {node.api_key}", "-H", f"X-Node-UUID: {node.uuid}"]
        select = ["--include-path-regex", AGENT]
    elif what == "wrong credentials":
        # A wrong secret with a real node UUID: only the key is wrong.
        headers = ["-H", f"Authorization: Bearer {WRONG_SECRET}", "-H", f"X-Node-UUID: {node.uuid}"]
    else:
        headers = []
    log_before = seeded.srv.log.read_text(errors="replace")
    rows_before = table_counts(seeded.srv.db)

    result = _schemathesis(seeded, tmp_path, headers, select, examples)
    print(_report(what, result))

    assert result.requests > 200, result.output[-3000:]
    server_errors = sum(n for code, n in result.statuses.items() if code >= 500 or code == 0)
    assert server_errors == 0, result.output[-6000:]
    assert result.failures == [], (result.failures[:20], result.output[-6000:])
    assert result.returncode == 0, result.output[-6000:]
    new_log = seeded.srv.log.read_text(errors="replace")[len(log_before) :]
    assert "Traceback" not in new_log, new_log[-4000:]
    if what in ("deploy token", "node key", "dashboard session"):
        # The credentials worked: the fuzz reached the handlers, not only the auth.
        assert len(result.successes) > 20, result.statuses
    if what in ("wrong credentials", "no credentials"):
        # Nothing got past authentication: 2xx only for health and CORS-less OPTIONS.
        passed = {(m, p) for m, p in result.successes if m != "OPTIONS" and p != "/api/health"}
        assert passed == set(), passed
        assert result.statuses[401] > 200, result.statuses
        assert table_counts(seeded.srv.db) == rows_before
