"""Stopping a real `ftcontrol serve` while an agent's fleet long-poll is held: the poll is
answered (200, its version as it is) instead of being held until uvicorn's graceful
shutdown gives up and cancels it, and nothing is logged as an error."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import httpx

from tests.api.served import Node, served_control


def _held_poll(base: str, node: Node, after: int, out: list[httpx.Response | Exception]) -> None:
    try:
        out.append(
            httpx.get(
                f"{base}/api/v1/agent/fleet",
                params={"after": after, "wait": 30},
                headers=node.headers,
                timeout=40,
            )
        )
    except Exception as exc:  # the assertion below names it
        out.append(exc)


def test_a_held_long_poll_is_answered_when_the_server_stops(tmp_path: Path) -> None:
    with served_control(tmp_path, isolated=False) as srv:
        srv.start()
        node = srv.node(srv.workspace("acme"), "edge-1")
        first = srv.request("GET", "/api/v1/agent/fleet", headers=node.headers)
        assert first.status_code == 200, first.text
        version = first.json()["version"]
        out: list[httpx.Response | Exception] = []
        poll = threading.Thread(target=_held_poll, args=(srv.base, node, version, out))
        poll.start()
        time.sleep(1.0)  # the poll is in and held (nothing moves the node's version)
        assert not out, out
        assert srv.proc is not None
        srv.proc.send_signal(signal.SIGTERM)
        poll.join(40)
        (answer,) = out
        assert isinstance(answer, httpx.Response), repr(answer)
        assert answer.status_code == 200, answer.text
        assert answer.json()["version"] == version
        # uvicorn re-raises the signal once it has shut down cleanly
        assert srv.proc.wait(30) in (0, -signal.SIGTERM)
    log = srv.log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log
