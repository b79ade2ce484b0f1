"""The fleet lab: many victim namespaces behind one bridge, for attacks spread over a
group of nodes (carpet bombing) and the control plane's answer to them.

    from lab.fleet import FleetLab
    with FleetLab.create(victims=4) as lab:
        lab.victims[0].ns, lab.victims[0].ifname    # one node: XDP goes on its interface
        lab.node(0)                                  # a one-victim view (floods, lab.legit)
        lab.control.v4                               # where `ftcontrol serve` listens

    attacker-<id>   --veth--+
    client-<id>     --veth--+
    control-<id>    --veth--+-- bridge-<id> (Linux bridge, STP off)
    victim-<id>-0   --veth--+
    ...                     |
    victim-<id>-N-1 --veth--+

Names are unique per run (`<role>-<pid>-<n>[-<i>]`; interfaces `fl<role><i><pid>x<n>` in
the hosts' namespaces, `fp<role><i><pid>x<n>` as bridge ports). Addresses 10.79.0.0/24 and
fd79::/64: attacker .1, client .3, control plane .4, victims from .16 up (VICTIM_PREFIX,
a /28, is the declared prefix that covers them: at most MAX_VICTIMS). Loopback up; no
default route anywhere, so spoofed floods reach nothing but the bridge's hosts. Every
host's MAC is a static entry on its bridge port (frames for one victim never flood to
another's port). Removed by destroy()/__exit__ (also after an exception) and at
interpreter exit; `add_victim()` adds one more victim to a running lab.
"""

from __future__ import annotations

import atexit
import contextlib
from dataclasses import dataclass, field
from types import TracebackType

from lab.collateral import BRIDGE, NTF_MASTER, NUD_NOARP, Host
from lab.netns import IFA_F_NODAD, NETNS_DIR, InNamespaces, LabError, next_run_id
from lab.trafgen import Endpoints

V4_NET, V6_NET = "10.79.0", "fd79::"
V4_PREFIX, V6_PREFIX = 24, 64
FIXED = {"attacker": 1, "client": 3, "control": 4}  # role -> last address byte
TAGS = {"attacker": "a", "client": "c", "control": "k"}  # role -> its interfaces' tag
VICTIM_FIRST = 16
MAX_VICTIMS = 16
VICTIM_PREFIX = f"{V4_NET}.{VICTIM_FIRST}/28"  # the victims' addresses, and no other host's

_live: set[FleetLab] = set()


def _v4(n: int) -> str:
    return f"{V4_NET}.{n}"


def _v6(n: int) -> str:
    return f"{V6_NET}{n:x}"


@dataclass(frozen=True, slots=True)
class NodeView:
    """One victim of a fleet lab under the names a one-victim tool expects (the flood
    runner's FloodLab, lab.legit's LegitLab, lab.services' ServiceLab)."""

    attacker: Host
    victim: Host
    client: Host

    @property
    def attacker_ns(self) -> str:
        return self.attacker.ns

    @property
    def attacker_if(self) -> str:
        return self.attacker.ifname

    @property
    def attacker_mac(self) -> str:
        return self.attacker.mac

    @property
    def attacker_v4(self) -> str:
        return self.attacker.v4

    @property
    def attacker_v6(self) -> str:
        return self.attacker.v6

    @property
    def victim_ns(self) -> str:
        return self.victim.ns

    @property
    def victim_if(self) -> str:
        return self.victim.ifname

    @property
    def victim_mac(self) -> str:
        return self.victim.mac

    @property
    def victim_v4(self) -> str:
        return self.victim.v4

    @property
    def victim_v6(self) -> str:
        return self.victim.v6

    @property
    def client_ns(self) -> str:
        return self.client.ns

    def endpoints(self) -> Endpoints:
        """Attacker -> this victim, as trafgen's configuration needs them."""
        a, v = self.attacker, self.victim
        return Endpoints(a.mac, v.mac, a.v4, v.v4, a.v6, v.v6)


@dataclass(eq=False)
class FleetLab(InNamespaces):
    run_id: str
    bridge_ns: str
    hosts: dict[str, Host] = field(default_factory=dict)  # attacker, client, control
    victims: list[Host] = field(default_factory=list)
    # every namespace and veth made so far, also of a host whose build failed half-way
    _made_ns: list[str] = field(default_factory=list)
    _made_links: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def create(cls, victims: int = 4) -> FleetLab:
        """Build the bridge, the attacker, client and control-plane hosts and `victims`
        victims; on any failure remove what was made."""
        if not 1 <= victims <= MAX_VICTIMS:
            raise LabError(f"victims: 1..{MAX_VICTIMS}, got {victims}")
        run_id = next_run_id()
        lab = cls(run_id=run_id, bridge_ns=f"bridge-{run_id}")
        _live.add(lab)
        try:
            lab._build_bridge()
            for role, n in FIXED.items():
                lab.hosts[role] = lab._add_host(role, f"{role}-{run_id}", TAGS[role], n)
            for _ in range(victims):
                lab.add_victim()
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _short(self, tag: str) -> str:
        return f"{tag}{self.run_id.replace('-', 'x')}"[:15]

    def _build_bridge(self) -> None:
        from pyroute2 import NetNS, netns

        netns.create(self.bridge_ns)
        self._made_ns.append(self.bridge_ns)
        with NetNS(self.bridge_ns, flags=0) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
            nsr.link("add", ifname=BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0)
            nsr.link("set", index=nsr.link_lookup(ifname=BRIDGE)[0], state="up")

    def _add_host(self, role: str, ns: str, tag: str, n: int) -> Host:
        """A namespace with one veth into the bridge, addressed .n / ::n, its MAC static
        on its bridge port."""
        from pyroute2 import IPRoute, NetNS, netns

        host = Host(role, ns, self._short(f"fl{tag}"), self._short(f"fp{tag}"), _v4(n), _v6(n))
        netns.create(ns)
        self._made_ns.append(ns)
        self._made_links.append((host.ifname, host.port))
        with IPRoute() as ipr:
            ipr.link("add", ifname=host.ifname, kind="veth", peer=host.port)
            ipr.link("set", index=ipr.link_lookup(ifname=host.ifname)[0], net_ns_fd=ns)
            ipr.link("set", index=ipr.link_lookup(ifname=host.port)[0], net_ns_fd=self.bridge_ns)
        with NetNS(ns, flags=0) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
            idx = nsr.link_lookup(ifname=host.ifname)[0]
            nsr.addr("add", index=idx, address=host.v4, prefixlen=V4_PREFIX)
            nsr.addr("add", index=idx, address=host.v6, prefixlen=V6_PREFIX, flags=IFA_F_NODAD)
            nsr.link("set", index=idx, state="up")
            mac = str(nsr.get_links(idx)[0].get_attr("IFLA_ADDRESS"))
        with NetNS(self.bridge_ns, flags=0) as nsr:
            br = nsr.link_lookup(ifname=BRIDGE)[0]
            port = nsr.link_lookup(ifname=host.port)[0]
            # the static entry before the port comes up: the bridge must not learn the MAC
            # from the host's first frames first (the add would then find it there)
            nsr.link("set", index=port, master=br)
            nsr.fdb("replace", ifindex=port, lladdr=mac, master=br, state=NUD_NOARP,
                    flags=NTF_MASTER)  # fmt: skip
            nsr.link("set", index=port, state="up")
        return Host(role, ns, host.ifname, host.port, host.v4, host.v6, mac)

    def add_victim(self) -> Host:
        """One more victim (the next address of VICTIM_PREFIX); returns it."""
        i = len(self.victims)
        if i >= MAX_VICTIMS:
            raise LabError(f"at most {MAX_VICTIMS} victims (VICTIM_PREFIX {VICTIM_PREFIX})")
        host = self._add_host("victim", f"victim-{self.run_id}-{i}", f"v{i:x}", VICTIM_FIRST + i)
        self.victims.append(host)
        return host

    def destroy(self) -> None:
        """Remove every namespace (which removes every link). Idempotent."""
        from pyroute2 import IPRoute, netns

        for ns in self._made_ns:
            if (NETNS_DIR / ns).exists():
                with contextlib.suppress(Exception):
                    netns.remove(ns)
        with contextlib.suppress(Exception), IPRoute() as ipr:
            # a half-built link may still sit in this namespace
            for ifname, port in self._made_links:
                found = ipr.link_lookup(ifname=ifname) or ipr.link_lookup(ifname=port)
                if found:
                    ipr.link("del", index=found[0])
        _live.discard(self)

    def __enter__(self) -> FleetLab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.destroy()

    @property
    def attacker(self) -> Host:
        return self.hosts["attacker"]

    @property
    def client(self) -> Host:
        return self.hosts["client"]

    @property
    def control(self) -> Host:
        return self.hosts["control"]

    def node(self, i: int) -> NodeView:
        return NodeView(self.attacker, self.victims[i], self.client)


@atexit.register
def _cleanup_at_exit() -> None:
    for lab in list(_live):
        lab.destroy()
