"""GET /install.sh and GET /install/<wheel> (control/install): no token needed, the
script carries this server's URL and its wheel's sha256, nothing else is served."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from litestar.testing import AsyncTestClient

from control.app import create_app
from control.install.assets import InstallAssets
from tests.api.conftest import assert_error
from tests.capability import require

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "install.sh"
WHEEL = "fasttrace-0.1.0-py3-none-any.whl"


@pytest.fixture
def wheel_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "wheels"
    directory.mkdir()
    return directory


async def _client(
    tmp_path: Path, wheel_dir: Path, public_url: str | None = None
) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    app = create_app(
        str(tmp_path / "c.db"),
        install_assets=InstallAssets(script=SCRIPT, wheel_dir=wheel_dir),
        public_url=public_url,
    )
    async with AsyncTestClient(app, base_url="http://control.test:8080") as client:
        yield client


@pytest.fixture
async def client(tmp_path: Path, wheel_dir: Path) -> AsyncIterator[AsyncTestClient]:  # type: ignore[type-arg]
    async for c in _client(tmp_path, wheel_dir):
        yield c


async def test_without_a_wheel_both_routes_say_how_to_get_one(client, wheel_dir) -> None:
    for path in ("/install.sh", f"/install/{WHEEL}"):
        body = assert_error(await client.get(path), 404, "no agent wheel", "make install")
        assert str(wheel_dir) in body["error"]


async def test_the_script_names_this_server_and_its_wheel(client, wheel_dir, tmp_path) -> None:
    data = b"PK\x03\x04 not really a wheel, but bytes with a digest"
    (wheel_dir / WHEEL).write_bytes(data)
    response = await client.get("/install.sh")  # no Authorization header at all
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/x-shellscript")
    text = response.text
    assert "\nFT_SERVER=http://control.test:8080\n" in text
    assert f"\nFT_WHEEL_URL=http://control.test:8080/install/{WHEEL}\n" in text
    assert f"\nFT_WHEEL_SHA256={hashlib.sha256(data).hexdigest()}\n" in text
    # Everything but the three lines is the checked-in script.
    assert len(text.splitlines()) == len(SCRIPT.read_text().splitlines())
    rendered = tmp_path / "served.sh"
    rendered.write_text(text)
    require(shutil.which("shellcheck") is not None, "shellcheck")
    check = await asyncio.to_thread(
        subprocess.run, ["shellcheck", str(rendered)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout

    served = await client.get(f"/install/{WHEEL}")
    assert served.status_code == 200 and served.content == data


async def test_a_public_url_replaces_the_request_origin(tmp_path, wheel_dir) -> None:
    (wheel_dir / WHEEL).write_bytes(b"wheel")
    async for client in _client(tmp_path, wheel_dir, public_url="https://ddos.example.net"):
        text = (await client.get("/install.sh")).text
        assert "\nFT_SERVER=https://ddos.example.net\n" in text
        assert f"\nFT_WHEEL_URL=https://ddos.example.net/install/{WHEEL}\n" in text


async def test_a_host_header_that_is_not_a_plain_host_is_refused(client, wheel_dir) -> None:
    (wheel_dir / WHEEL).write_bytes(b"wheel")
    response = await client.get("/install.sh", headers={"Host": "under_score.test"})
    assert_error(response, 400, "not a plain http(s) origin")


async def test_only_the_installed_wheel_is_served(client, wheel_dir) -> None:
    (wheel_dir / WHEEL).write_bytes(b"wheel")
    assert_error(await client.get("/install/fasttrace-9.9-py3-none-any.whl"), 404, WHEEL)
    assert_error(await client.get("/install/..%2Fc.db"), 404)
    assert_error(await client.get("/install/ftcontrol.db"), 404, "no such file")
