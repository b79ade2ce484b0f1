"""The BGP lab: BIRD 2 as the upstream router, in a network namespace of its own, peered
over a veth pair with a second namespace where ftcontrol's ExaBGP speaker runs.

    from lab.bird import BgpLab
    with BgpLab.create() as lab:
        engine = BgpEngine(lab.speaker_config(), workdir, argv_prefix=lab.speaker_argv_prefix)
        lab.session_state()                 # "Established" once the session is up
        lab.routes("flowtab4")              # BIRD's FlowSpec table, parsed from birdc

Router 10.78.0.1/30 + fd78::1/64 (AS 64512, passive), speaker 10.78.0.2/30 + fd78::2/64
(AS 64513); loopback up; no default route in either namespace and nothing in the root
namespace, so nothing announced can leak anywhere. BIRD resolves the RTBH next hops
(192.0.2.1, 100::1) to blackhole routes, as an upstream router that honours RTBH does.
Names are unique per run (`bgprtr-<pid>-<n>`, `bgpspk-<pid>-<n>`); destroy()/__exit__
removes both namespaces (killing BIRD first) and so does interpreter exit.

`BgpLab.create(speaker_ns=lab.victim_ns)` peers BIRD with an existing namespace instead
(the agent lab's victim, where `ftcontrol serve --bgp-config` runs and starts ExaBGP
itself): the speaker's veth end and addresses go there, and destroy() leaves that
namespace to its owner.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import itertools
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import msgspec

from control.bgp.config import BgpConfig, ListenConfig, PeerConfig
from lab.netns import NETNS_DIR, LabError, build_veth_pair, nsenter_argv

ROUTER_V4, SPEAKER_V4, V4_PREFIX = "10.78.0.1", "10.78.0.2", 30
ROUTER_V6, SPEAKER_V6, V6_PREFIX = "fd78::1", "fd78::2", 64
ROUTER_AS, SPEAKER_AS = 64512, 64513
FLOW4, FLOW6 = "flowtab4", "flowtab6"
UNICAST4, UNICAST6 = "master4", "master6"
PR_SET_PDEATHSIG = 1
PROTOCOL = "speaker"  # BIRD's name for the session with ftcontrol's speaker
PROTOCOL_V6 = "speaker6"  # the same over IPv6

_counter = itertools.count(1)
_counter_lock = threading.Lock()
_live: set[BgpLab] = set()

BIRD_CONF = f"""\
router id {ROUTER_V4};
log stderr all;
protocol device {{}}
flow4 table {FLOW4};
flow6 table {FLOW6};
# an upstream that honours RTBH routes the blackhole next hops to discard
protocol static discard4 {{ ipv4; route 192.0.2.1/32 blackhole; }}
protocol static discard6 {{ ipv6; route 100::/64 blackhole; }}
template bgp ftcontrol {{
  local as {ROUTER_AS};
  passive on;
  hold time 9;
  ipv4 {{ import all; export none; gateway recursive; }};
  ipv6 {{ import all; export none; gateway recursive; }};
  flow4 {{ table {FLOW4}; import all; export none; }};
  flow6 {{ table {FLOW6}; import all; export none; }};
}}
# the speaker's session over IPv4, and (for a speaker configured so) over IPv6
protocol bgp {PROTOCOL} from ftcontrol {{
  local {ROUTER_V4};
  neighbor {SPEAKER_V4} as {SPEAKER_AS};
}}
protocol bgp {PROTOCOL_V6} from ftcontrol {{
  local {ROUTER_V6};
  neighbor {SPEAKER_V6} as {SPEAKER_AS};
}}
"""


@dataclass(frozen=True)
class BirdRoute:
    """One route as `birdc show route all` prints it: the network (for FlowSpec, the
    whole `flow4 { ... }` match) and its attribute lines (`BGP.community` -> text)."""

    net: str
    protocol: str  # the BIRD protocol it came from ("speaker", "speaker6", "discard4")
    attributes: dict[str, str] = field(default_factory=dict)


def parse_routes(text: str) -> list[BirdRoute]:
    routes: list[BirdRoute] = []
    for line in text.splitlines():
        if not line.strip() or line.startswith(("BIRD ", "Table ")):
            continue
        if line.startswith("\t") or line.startswith(" " * 8):
            key, sep, value = line.strip().partition(":")
            if sep and routes:
                routes[-1].attributes[key] = value.strip()
            continue
        # a FlowSpec network is the whole `flow4 { ... }` match; a prefix is one word
        net = line[: line.index("}") + 1] if line.startswith("flow") else line.split()[0]
        origin = line[len(net) :].split("[", 1)[1].split()[0] if "[" in line else ""
        routes.append(BirdRoute(net=net, protocol=origin))
    return routes


def speaker_config(**overrides: object) -> BgpConfig:
    """A BgpConfig for the speaker side of the lab (fields overridable)."""
    values: dict[str, object] = {
        "router_id": SPEAKER_V4,
        "local_as": SPEAKER_AS,
        "listen": ListenConfig(address=SPEAKER_V4),
        "peers": (PeerConfig(address=ROUTER_V4, peer_as=ROUTER_AS),),
    }
    values.update(overrides)
    return BgpConfig(**values)  # type: ignore[arg-type]


def config_toml(config: BgpConfig) -> str:
    """The TOML file `ftcontrol serve --bgp-config` reads, for `config` (unset keys left
    out, so the file says only what the lab chose)."""

    def without_none(value: object) -> object:
        if isinstance(value, dict):
            return {k: without_none(v) for k, v in value.items() if v is not None}
        if isinstance(value, list | tuple):
            return [without_none(v) for v in value]
        return value

    return msgspec.toml.encode(without_none(msgspec.to_builtins(config))).decode()


@dataclass(eq=False)
class BgpLab:
    router_ns: str
    speaker_ns: str
    router_if: str
    speaker_if: str
    workdir: Path
    bird: subprocess.Popen[bytes] | None = None
    owns_speaker_ns: bool = True  # False: the speaker side is another lab's namespace

    @classmethod
    def create(cls, speaker_ns: str | None = None) -> BgpLab:
        """Build the router's namespace (and the speaker's, unless `speaker_ns` names an
        existing one to peer from) and start BIRD; on any failure remove what was made."""
        remove_stale()
        with _counter_lock:
            run_id = f"{os.getpid()}-{next(_counter)}"
        short = run_id.replace("-", "x")
        lab = cls(
            router_ns=f"bgprtr-{run_id}",
            speaker_ns=speaker_ns or f"bgpspk-{run_id}",
            router_if=f"ftr{short}"[:15],
            speaker_if=f"fts{short}"[:15],
            workdir=Path(tempfile.mkdtemp(prefix="ftbgp-lab-")),
            owns_speaker_ns=speaker_ns is None,
        )
        _live.add(lab)
        try:
            lab._build()
            lab._start_bird()
        except BaseException:
            lab.destroy()
            raise
        return lab

    @property
    def bird_socket(self) -> Path:
        return self.workdir / "bird.ctl"

    @property
    def speaker_argv_prefix(self) -> list[str]:
        """Prefix for the speaker's command line: it runs in the speaker namespace."""
        return nsenter_argv(self.speaker_ns, [])

    def speaker_config(self, **overrides: object) -> BgpConfig:
        return speaker_config(**overrides)

    def _build(self) -> None:
        build_veth_pair(
            (self.router_ns, self.router_if, ROUTER_V4, ROUTER_V6),
            (self.speaker_ns, self.speaker_if, SPEAKER_V4, SPEAKER_V6),
            V4_PREFIX,
            V6_PREFIX,
        )

    def _start_bird(self) -> None:
        conf = self.workdir / "bird.conf"
        conf.write_text(BIRD_CONF, "utf-8")
        with open(self.workdir / "bird.log", "ab") as log:
            self.bird = subprocess.Popen(
                nsenter_argv(
                    self.router_ns,
                    ["bird", "-f", "-c", str(conf), "-s", str(self.bird_socket)],
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # a killed test run leaves no BIRD behind
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.bird.poll() is not None:
                raise LabError(f"BIRD exited: {self.bird_log()}")
            if self.bird_socket.exists() and self.birdc("show", "status").returncode == 0:
                return
            time.sleep(0.05)
        raise LabError("BIRD did not open its control socket within 10 s")

    def bird_log(self) -> str:
        path = self.workdir / "bird.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---------- asking BIRD ----------

    def birdc(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["birdc", "-s", str(self.bird_socket), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    def session_state(self, protocol: str = PROTOCOL) -> str:
        """A speaker session's BGP state as BIRD reports it ("Established", "Active"...)."""
        out = self.birdc("show", "protocols", protocol).stdout
        for line in out.splitlines():
            fields = line.split()
            if fields and fields[0] == protocol:
                return fields[5] if len(fields) > 5 else fields[3]
        return ""

    def routes(self, table: str) -> list[BirdRoute]:
        result = self.birdc("show", "route", "all", "table", table)
        if result.returncode != 0:
            raise LabError(f"birdc failed: {result.stdout}{result.stderr}")
        return parse_routes(result.stdout)

    # ---------- teardown ----------

    def destroy(self) -> None:
        """Stop BIRD, remove the namespaces this lab made (and with them the veth pair).
        Idempotent."""
        from pyroute2 import netns

        if self.bird is not None and self.bird.poll() is None:
            self.bird.terminate()
            try:
                self.bird.wait(5)
            except subprocess.TimeoutExpired:
                self.bird.kill()
                self.bird.wait()
        owned = (self.router_ns, self.speaker_ns) if self.owns_speaker_ns else (self.router_ns,)
        for ns in owned:
            if (NETNS_DIR / ns).exists():
                with contextlib.suppress(Exception):
                    netns.remove(ns)
        shutil.rmtree(self.workdir, ignore_errors=True)
        _live.discard(self)

    def __enter__(self) -> BgpLab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.destroy()


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG survives nsenter's exec of bird
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def remove_stale() -> list[str]:
    """Remove BGP lab namespaces whose owner process is gone (a run killed before its
    cleanup), stopping what still runs inside them; returns their names."""
    from pyroute2 import netns

    removed = []
    for name in netns.listnetns():
        role, _, rest = name.partition("-")
        pid = rest.split("-")[0]
        if role not in ("bgprtr", "bgpspk") or not pid.isdigit() or Path(f"/proc/{pid}").exists():
            continue
        inside = subprocess.run(
            ["ip", "netns", "pids", name], capture_output=True, text=True, check=False
        ).stdout.split()
        for left in inside:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(left), signal.SIGKILL)
        with contextlib.suppress(Exception):
            netns.remove(name)
            removed.append(name)
    return removed


@atexit.register
def _cleanup_at_exit() -> None:
    for lab in list(_live):
        lab.destroy()
