"""`ftcontrol workspace prefixes NAME add|remove|list PREFIX`: what a workspace may have
announced upstream, and its clear refusals."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from control.cli import main as cli_main


def test_prefixes_add_list_remove_and_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")

    def ftcontrol(*argv: str) -> int:
        # The CLI runs its own event loop (asyncio.run); keep it off the test's.
        return ThreadPoolExecutor(1).submit(cli_main, [*argv, "--db", db]).result()

    assert ftcontrol("workspace", "create", "acme") == 0
    capsys.readouterr()
    assert ftcontrol("workspace", "prefixes", "acme", "add", "203.0.113.0/24") == 0
    assert ftcontrol("workspace", "prefixes", "acme", "add", "2001:DB8:5::/48") == 0
    capsys.readouterr()
    assert ftcontrol("workspace", "prefixes", "acme", "list") == 0
    assert capsys.readouterr().out.split() == ["203.0.113.0/24", "2001:db8:5::/48"]

    for argv, message in (
        (("acme", "add", "203.0.113.5/24"), "has host bits set (the network is 203.0.113.0/24)"),
        (("acme", "add", "203.0.113.300/24"), "prefix: '203.0.113.300/24' is not an IPv4"),
        (("acme", "add", "203.0.113.7"), "has no length"),
        (("acme", "add", "203.0.113.0/24"), "already declared"),
        (("nobody", "add", "198.51.100.0/24"), "no workspace named 'nobody'"),
        (("nobody", "list"), "no workspace named 'nobody'"),
        (("acme", "remove", "198.51.100.0/24"), "198.51.100.0/24 is not declared for 'acme'"),
        (("acme", "add"), "prefix: add needs a PREFIX"),
    ):
        assert ftcontrol("workspace", "prefixes", *argv) == 1, argv
        assert message in capsys.readouterr().err, argv

    assert ftcontrol("workspace", "prefixes", "acme", "remove", "203.0.113.0/24") == 0
    capsys.readouterr()
    assert ftcontrol("workspace", "prefixes", "acme", "list") == 0
    assert capsys.readouterr().out.split() == ["2001:db8:5::/48"]
