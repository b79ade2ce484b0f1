"""`ftcontrol user create|passwd|delete`: a real process, the password on stdin only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from litestar.testing import AsyncTestClient

from control.app import create_app
from tests.api.conftest import assert_error

OLD = "first password here"
NEW = "second password here"


def ftcontrol(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def _login(client: AsyncTestClient, password: str) -> int:  # type: ignore[type-arg]
    r = await client.post(
        "/api/dash/login", json={"email": "ops@acme.example", "password": password}
    )
    return r.status_code


async def test_user_lifecycle_from_the_command_line(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    assert ftcontrol("workspace", "create", "acme", "--db", db).returncode == 0
    done = ftcontrol(
        "user",
        "create",
        "ops@acme.example",
        "--workspace",
        "acme",
        "--role",
        "admin",
        "--db",
        db,
        stdin=OLD + "\n",
    )
    assert done.returncode == 0, done.stderr
    assert OLD not in done.stdout + done.stderr  # never echoed nor logged

    short = ftcontrol(
        "user", "create", "b@acme.example", "--workspace", "acme", "--db", db, stdin="short\n"
    )
    assert short.returncode == 1 and "password: at least 8 characters" in short.stderr
    nowhere = ftcontrol(
        "user", "create", "c@acme.example", "--workspace", "nope", "--db", db, stdin=OLD + "\n"
    )
    assert nowhere.returncode == 1 and "workspace 'nope' not found" in nowhere.stderr
    twice = ftcontrol(
        "user", "create", "OPS@acme.example", "--workspace", "acme", "--db", db, stdin=OLD + "\n"
    )
    assert twice.returncode == 1 and "already exists" in twice.stderr
    bad_role = ftcontrol(
        "user", "create", "d@acme.example", "--workspace", "acme", "--role", "root", "--db", db
    )
    assert bad_role.returncode == 2 and "--role" in bad_role.stderr

    async with AsyncTestClient(create_app(db)) as client:
        assert await _login(client, OLD) == 200

        changed = ftcontrol("user", "passwd", "ops@acme.example", "--db", db, stdin=NEW + "\n")
        assert changed.returncode == 0, changed.stderr
        assert await _login(client, OLD) == 401
        assert await _login(client, NEW) == 200

        gone = ftcontrol("user", "delete", "ops@acme.example", "--db", db)
        assert gone.returncode == 0, gone.stderr
        r = await client.post(
            "/api/dash/login", json={"email": "ops@acme.example", "password": NEW}
        )
        assert_error(r, 401)
    again = ftcontrol("user", "delete", "ops@acme.example", "--db", db)
    assert again.returncode == 1 and "not found" in again.stderr
