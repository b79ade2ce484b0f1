"""The supervisor of the ExaBGP child process.

start() listens on a Unix socket in `workdir`, writes ExaBGP's configuration there and
starts ExaBGP; ExaBGP starts the relay (control/bgp/relay.py), which connects to the
socket. Through that connection send() writes one API command and waits for ExaBGP's
"done" (or "error"), and peer state changes arrive as JSON. When ExaBGP exits it is
started again after a back-off (doubling from `backoff_initial_s` to `backoff_max_s`,
back to the start after a run of `stable_after_s`); every time a relay connects,
`on_ready` runs, which is where the owner re-announces what is in force.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Literal

import msgspec

from control.bgp.config import BgpConfig
from control.bgp.exabgp_conf import exabgp_config, exabgp_environment

log = logging.getLogger(__name__)

SessionState = Literal["down", "connected", "up"]


class SpeakerUnavailable(RuntimeError):
    """ExaBGP is not running (or its relay is not connected): nothing was sent."""


class CommandRejected(RuntimeError):
    """ExaBGP answered "error" to a command."""


class PeerState(msgspec.Struct, frozen=True, kw_only=True):
    address: str
    state: SessionState
    since: float  # wall-clock seconds
    reason: str = ""


class _PeerAddress(msgspec.Struct):
    peer: str


class _Neighbor(msgspec.Struct):
    address: _PeerAddress
    state: str | None = None
    reason: str | None = None


class _ApiMessage(msgspec.Struct):
    """The part of ExaBGP's JSON messages we read (other fields ignored)."""

    type: str
    neighbor: _Neighbor | None = None


def _open_log(path: Path) -> BinaryIO:
    return open(path, "ab")  # ExaBGP's own log, appended across restarts


_decode_message = msgspec.json.Decoder(_ApiMessage).decode

ReadyHook = Callable[[], Awaitable[None]]


class ExaBgpSpeaker:
    def __init__(
        self,
        config: BgpConfig,
        workdir: Path,
        *,
        argv_prefix: Sequence[str] = (),
        exabgp: str = "exabgp",
        on_ready: ReadyHook | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        stable_after_s: float = 30.0,
        command_timeout_s: float = 10.0,
    ) -> None:
        self.config = config
        self.workdir = workdir
        self.argv_prefix = tuple(argv_prefix)  # e.g. nsenter into a network namespace
        self.exabgp = exabgp
        self.on_ready = on_ready
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.stable_after_s = stable_after_s
        self.command_timeout_s = command_timeout_s
        self.restarts = 0  # times ExaBGP was started again after it exited
        self._peers = {
            p.address: PeerState(address=p.address, state="down", since=time.time())
            for p in config.peers
        }
        self._process: asyncio.subprocess.Process | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: collections.deque[asyncio.Future[None]] = collections.deque()
        self._send_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._supervisor: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def socket_path(self) -> Path:
        return self.workdir / "api.sock"

    @property
    def config_path(self) -> Path:
        return self.workdir / "exabgp.conf"

    @property
    def log_path(self) -> Path:
        return self.workdir / "exabgp.log"

    @property
    def pid(self) -> int | None:
        """ExaBGP's process id while it runs."""
        proc = self._process
        return proc.pid if proc is not None and proc.returncode is None else None

    @property
    def connected(self) -> bool:
        """True while commands can be sent (ExaBGP runs and its relay is connected)."""
        return self._writer is not None

    def peers(self) -> list[PeerState]:
        return list(self._peers.values())

    async def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._stopping = False
        self._server = await asyncio.start_unix_server(self._on_relay, path=self.socket_path)
        os.chmod(self.socket_path, 0o600)
        self.config_path.write_text(exabgp_config(self.config, self.socket_path), "utf-8")
        self._supervisor = asyncio.create_task(self._supervise(), name="exabgp-supervisor")

    async def stop(self) -> None:
        """Stop ExaBGP (its sessions close, so peers drop everything it announced)."""
        self._stopping = True
        if self._supervisor is not None:  # first: no new ExaBGP from here on
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        proc = self._process
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await proc.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        self._all_peers_down("stopped")
        if self._writer is not None:
            self._writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        self._fail_pending()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def send(self, command: str) -> None:
        """Write one API command and wait for ExaBGP to accept it."""
        async with self._send_lock:
            writer = self._writer
            if writer is None:
                raise SpeakerUnavailable("ExaBGP is not connected")
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._pending.append(done)
            writer.write(command.encode() + b"\n")
            try:
                await writer.drain()
                async with asyncio.timeout(self.command_timeout_s):
                    await done
            except ConnectionError as exc:
                raise SpeakerUnavailable(f"ExaBGP went away: {exc!r}") from None
            except TimeoutError:
                # a late answer would be taken for the next command's: drop this relay
                # (ExaBGP is then replaced, and the owner re-announces)
                self._drop_relay(writer)
                raise SpeakerUnavailable(
                    f"ExaBGP did not answer within {self.command_timeout_s} s"
                ) from None
            finally:
                with contextlib.suppress(ValueError):
                    self._pending.remove(done)

    # ---------- the child process ----------

    async def _supervise(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self.backoff_initial_s
        env = {**os.environ, **exabgp_environment(self.config)}
        while not self._stopping:
            started = loop.time()
            try:
                with _open_log(self.log_path) as logfile:
                    self._process = await asyncio.create_subprocess_exec(
                        *self.argv_prefix,
                        self.exabgp,
                        str(self.config_path),
                        env=env,
                        stdin=asyncio.subprocess.DEVNULL,
                        stdout=logfile,
                        stderr=asyncio.subprocess.STDOUT,
                        start_new_session=True,  # a Ctrl-C at ftcontrol's terminal is ours
                    )
            except OSError as exc:
                outcome = f"ExaBGP could not be started: {exc}"
            else:
                outcome = f"ExaBGP exited with status {await self._process.wait()}"
            self._all_peers_down(outcome)
            if self._stopping:
                return
            log.warning("%s; starting it again in %.1f s", outcome, delay)
            if loop.time() - started >= self.stable_after_s:
                delay = self.backoff_initial_s
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.backoff_max_s)
            self.restarts += 1

    # ---------- the relay connection ----------

    async def _on_relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._writer is not None:  # a stale relay: the new ExaBGP's one wins
            self._writer.close()
            self._fail_pending()
        self._writer = writer
        if self.on_ready is not None:
            task = asyncio.create_task(self._run_ready_hook(self.on_ready))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        try:
            while line := await reader.readline():
                self._on_line(line.decode(errors="replace").strip())
        except ConnectionError:
            pass
        finally:
            self._drop_relay(writer)

    def _drop_relay(self, writer: asyncio.StreamWriter) -> None:
        """Forget a relay connection (closed, or no longer trusted)."""
        if self._writer is writer:
            self._writer = None
            self._fail_pending()
            self._stop_orphaned_exabgp()
        writer.close()

    def _stop_orphaned_exabgp(self) -> None:
        """The relay went away but ExaBGP runs on: nothing could drive it any more (ExaBGP
        does not exit when its API process does), so stop it; the supervisor starts it
        again and the owner re-announces."""
        proc = self._process
        if self._stopping or proc is None or proc.returncode is not None:
            return
        log.warning("the ExaBGP API relay went away; restarting ExaBGP")
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)

    async def _run_ready_hook(self, hook: ReadyHook) -> None:
        try:
            await hook()
        except (SpeakerUnavailable, CommandRejected) as exc:
            log.warning("re-announcing after an ExaBGP start failed: %s", exc)

    def _on_line(self, line: str) -> None:
        log.debug("exabgp: %s", line)
        if line in ("done", "error"):
            if self._pending:
                done = self._pending.popleft()
                if not done.done():
                    if line == "done":
                        done.set_result(None)
                    else:
                        done.set_exception(CommandRejected("ExaBGP answered error"))
            return
        if not line.startswith("{"):
            return
        try:
            message = _decode_message(line)
        except msgspec.DecodeError:
            log.warning("ExaBGP sent a message we cannot read: %.200s", line)
            return
        if message.type == "state" and message.neighbor and message.neighbor.state:
            self._set_peer(
                message.neighbor.address.peer, message.neighbor.state, message.neighbor.reason
            )

    def _set_peer(self, address: str, state: str, reason: str | None) -> None:
        if address not in self._peers:
            return
        name: SessionState = (
            "up" if state == "up" else "connected" if state == "connected" else "down"
        )
        self._peers[address] = PeerState(
            address=address, state=name, since=time.time(), reason=reason or ""
        )

    def _all_peers_down(self, reason: str) -> None:
        for address, peer in self._peers.items():
            since = peer.since if peer.state == "down" else time.time()
            self._peers[address] = PeerState(
                address=address, state="down", since=since, reason=reason
            )

    def _fail_pending(self) -> None:
        while self._pending:
            done = self._pending.popleft()
            if not done.done():
                done.set_exception(SpeakerUnavailable("ExaBGP went away"))
