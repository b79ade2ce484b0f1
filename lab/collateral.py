"""The collateral lab: attacker, client and victim namespaces joined by a bridge in a
fourth namespace, for measuring what real users lose while a flood is mitigated.

    from lab.collateral import CollateralLab
    with CollateralLab.create() as lab:
        lab.victim_if                 # the victim's ONE interface (XDP goes here)
        run_flood(lab, "udp_flood", packets=..., pps=...)   # from the attacker
        with lab.inside(lab.client_ns): ...

    attacker-<id> --veth--+
    client-<id>   --veth--+-- bridge-<id> (Linux bridge, STP off)
    victim-<id>   --veth--+

Names are unique per run (`<role>-<pid>-<n>`, interfaces `fc<role><pid>x<n>` in the
role namespaces and `fb<role><pid>x<n>` as bridge ports). Addresses 10.78.0.0/24 and
fd78::/64: attacker .1 / ::1, victim .2 / ::2, client .3 / ::3 (more client addresses
on demand, add_client_addresses: sources first seen during a flood); loopback up; no default
route anywhere, so spoofed floods reach nothing but the bridge's hosts. Every host's MAC
is a static entry on its bridge port: frames for the victim never flood to the client's
port (not even before the bridge has learned). Removed by destroy()/__exit__ (also after
an exception) and at interpreter exit; the attributes the flood runner needs (attacker_*
and victim_*) match lab.netns.Lab, so run_flood/start_flood take either.
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import TracebackType

from lab.netns import IFA_F_NODAD, NETNS_DIR, InNamespaces, LabError, enter_netns, next_run_id

V4_PREFIX, V6_PREFIX = 24, 64
ROLES = ("attacker", "victim", "client")
ADDRESSES = {  # role -> (IPv4, IPv6)
    "attacker": ("10.78.0.1", "fd78::1"),
    "victim": ("10.78.0.2", "fd78::2"),
    "client": ("10.78.0.3", "fd78::3"),
}
SPOOFED_V6 = "2001:db8::/96"  # where lab.trafgen's spoofed IPv6 sources lie
FRESH_V4_FIRST, FRESH_V4_MAX = 100, 155  # add_client_addresses: 10.78.0.100 .. .254
BRIDGE = "br0"  # inside the bridge namespace: no clash with anything
NUD_NOARP = 0x40  # a static forwarding entry (`bridge fdb add ... static`)
NTF_MASTER = 0x04

_live: set[CollateralLab] = set()
# The victim's TCP and IP counters that show where its traffic was lost or answered
# (its namespace's /proc/net/snmp and /proc/net/netstat): (section, name)
VICTIM_STACK_COUNTERS = (
    ("Tcp", "RetransSegs"),
    ("TcpExt", "TCPTimeouts"),
    ("TcpExt", "SyncookiesSent"),
    ("TcpExt", "SyncookiesRecv"),
    ("TcpExt", "ListenOverflows"),
    ("TcpExt", "ListenDrops"),
    ("Ip", "OutNoRoutes"),
)


@dataclass(frozen=True, slots=True)
class LinkDrops:
    """One interface's drop and traffic counters (/proc/net/dev of its namespace)."""

    rx_packets: int
    rx_dropped: int
    tx_packets: int
    tx_dropped: int

    def __sub__(self, other: LinkDrops) -> LinkDrops:
        return LinkDrops(self.rx_packets - other.rx_packets, self.rx_dropped - other.rx_dropped,
                         self.tx_packets - other.tx_packets,
                         self.tx_dropped - other.tx_dropped)  # fmt: skip


@dataclass(frozen=True, slots=True)
class PathCounters:
    """Every counter on the legitimate traffic's path that shows a loss outside XDP:
    the three hosts' interfaces and their bridge ports (a veth that cannot take a frame
    counts it as the SENDER's tx_dropped), the machine's per-CPU input backlogs
    (/proc/net/softnet_stat: dropped, and time_squeeze, softirq runs that ran out of
    budget; one machine-wide figure: the lab shares it with everything else) and the
    victim's own TCP and IP counters (VICTIM_STACK_COUNTERS). Subtract two reads for
    what happened between them."""

    hosts: dict[str, LinkDrops]  # role -> its interface, in its namespace
    ports: dict[str, LinkDrops]  # role -> its bridge port, in the bridge namespace
    backlog_dropped: int
    time_squeeze: int
    victim_stack: dict[str, int]  # "Section.Name" -> value

    def __sub__(self, other: PathCounters) -> PathCounters:
        return PathCounters(
            {r: d - other.hosts[r] for r, d in self.hosts.items()},
            {r: d - other.ports[r] for r, d in self.ports.items()},
            self.backlog_dropped - other.backlog_dropped,
            self.time_squeeze - other.time_squeeze,
            {k: v - other.victim_stack.get(k, 0) for k, v in self.victim_stack.items()},
        )

    @property
    def link_drops(self) -> int:
        """Frames any lab interface or bridge port dropped (rx or tx), and backlog drops."""
        links = (*self.hosts.values(), *self.ports.values())
        return self.backlog_dropped + sum(d.rx_dropped + d.tx_dropped for d in links)


def _link_drops(ifname: str) -> LinkDrops:
    """`ifname`'s counters in the calling thread's namespace."""
    with open("/proc/thread-self/net/dev") as fh:
        for line in fh:
            name, sep, rest = line.partition(":")
            if sep and name.strip() == ifname:
                f = [int(x) for x in rest.split()]
                # rx: bytes packets errs drop fifo frame compressed multicast, then tx:
                # bytes packets errs drop ...
                return LinkDrops(f[1], f[3], f[9], f[11])
    raise LabError(f"no interface {ifname!r} in this network namespace")


def _stack_counters(wanted: tuple[tuple[str, str], ...]) -> dict[str, int]:
    """(section, name) counters of the calling thread's namespace, as "Section.Name"."""
    found: dict[str, int] = {}
    for path in ("/proc/thread-self/net/snmp", "/proc/thread-self/net/netstat"):
        with open(path) as fh:
            lines = fh.read().splitlines()
        for head, values in zip(lines[::2], lines[1::2], strict=True):
            section, _, names = head.partition(":")
            for name, value in zip(names.split(), values.partition(":")[2].split(), strict=True):
                if (section, name) in wanted:
                    found[f"{section}.{name}"] = int(value)
    return found


def _softnet() -> tuple[int, int]:
    """(dropped, time_squeeze) summed over the machine's CPUs."""
    dropped = squeeze = 0
    with open("/proc/net/softnet_stat") as fh:
        for line in fh:
            cols = line.split()
            dropped += int(cols[1], 16)
            squeeze += int(cols[2], 16)
    return dropped, squeeze


@dataclass(frozen=True, slots=True)
class Host:
    role: str
    ns: str
    ifname: str  # its one interface, in its namespace
    port: str  # the peer end, a port of the bridge
    v4: str
    v6: str
    mac: str = ""


@dataclass(eq=False)
class CollateralLab(InNamespaces):
    run_id: str
    bridge_ns: str
    hosts: dict[str, Host] = field(default_factory=dict)
    # client addresses handed out by add_client_addresses, per IP version
    _fresh_used: dict[int, int] = field(default_factory=lambda: {4: 0, 6: 0})

    @classmethod
    def create(cls) -> CollateralLab:
        """Build the four namespaces, the bridge and the three links; on any failure
        remove what was made."""
        run_id = next_run_id()
        lab = cls(run_id=run_id, bridge_ns=f"bridge-{run_id}")
        short = run_id.replace("-", "x")
        for role in ROLES:
            v4, v6 = ADDRESSES[role]
            lab.hosts[role] = Host(role, f"{role}-{run_id}", f"fc{role[0]}{short}"[:15],
                                   f"fb{role[0]}{short}"[:15], v4, v6)  # fmt: skip
        _live.add(lab)
        try:
            lab._build()
        except BaseException:
            lab.destroy()
            raise
        return lab

    def _build(self) -> None:
        from pyroute2 import IPRoute, NetNS, netns

        netns.create(self.bridge_ns)
        for host in self.hosts.values():
            netns.create(host.ns)
        with IPRoute() as ipr:
            for host in self.hosts.values():
                ipr.link("add", ifname=host.ifname, kind="veth", peer=host.port)
                ipr.link("set", index=ipr.link_lookup(ifname=host.ifname)[0], net_ns_fd=host.ns)
                ipr.link("set", index=ipr.link_lookup(ifname=host.port)[0],
                         net_ns_fd=self.bridge_ns)  # fmt: skip
        for role, host in list(self.hosts.items()):
            with NetNS(host.ns) as nsr:
                nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
                idx = nsr.link_lookup(ifname=host.ifname)[0]
                nsr.addr("add", index=idx, address=host.v4, prefixlen=V4_PREFIX)
                nsr.addr("add", index=idx, address=host.v6, prefixlen=V6_PREFIX,
                         flags=IFA_F_NODAD)  # fmt: skip
                nsr.link("set", index=idx, state="up")
                mac = str(nsr.get_links(idx)[0].get_attr("IFLA_ADDRESS"))
            self.hosts[role] = Host(host.role, host.ns, host.ifname, host.port, host.v4,
                                    host.v6, mac)  # fmt: skip
        with NetNS(self.bridge_ns) as nsr:
            nsr.link("set", index=nsr.link_lookup(ifname="lo")[0], state="up")
            nsr.link("add", ifname=BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0)
            br = nsr.link_lookup(ifname=BRIDGE)[0]
            for host in self.hosts.values():
                port = nsr.link_lookup(ifname=host.port)[0]
                nsr.link("set", index=port, master=br, state="up")
                nsr.fdb("add", ifindex=port, lladdr=host.mac, master=br, state=NUD_NOARP,
                        flags=NTF_MASTER)  # fmt: skip
            nsr.link("set", index=br, state="up")

    def destroy(self) -> None:
        """Remove the four namespaces (which removes every link). Idempotent."""
        from pyroute2 import IPRoute, netns

        for ns in (self.bridge_ns, *(h.ns for h in self.hosts.values())):
            if (NETNS_DIR / ns).exists():
                with contextlib.suppress(Exception):
                    netns.remove(ns)
        with contextlib.suppress(Exception), IPRoute() as ipr:
            # a half-built link may still sit in this namespace
            for host in self.hosts.values():
                found = ipr.link_lookup(ifname=host.ifname) or ipr.link_lookup(ifname=host.port)
                if found:
                    ipr.link("del", index=found[0])
        _live.discard(self)

    def __enter__(self) -> CollateralLab:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.destroy()

    def add_client_addresses(self, count: int, ip_version: int) -> list[str]:
        """Give the client `count` more addresses of `ip_version`, never used before in
        this lab: sources the victim has not heard from (clients first seen during a
        flood). IPv4 from 10.78.0.100 up (FRESH_V4_MAX in a lab's life), IPv6
        fd78::1:<n> (as many as asked)."""
        from pyroute2 import NetNS

        if ip_version not in (4, 6):
            raise ValueError(f"ip_version: 4 or 6, got {ip_version!r}")
        used = self._fresh_used[ip_version]
        left = FRESH_V4_MAX - used if ip_version == 4 else 0xFFFF - used
        if not 0 < count <= left:
            raise ValueError(f"count: 1..{left} more IPv{ip_version} addresses, got {count}")
        self._fresh_used[ip_version] = used + count
        if ip_version == 4:
            made = [f"10.78.0.{FRESH_V4_FIRST + i}" for i in range(used, used + count)]
        else:
            made = [f"fd78::1:{i:x}" for i in range(used, used + count)]
        with NetNS(self.client_ns, flags=0) as nsr:
            idx = nsr.link_lookup(ifname=self.client.ifname)[0]
            for address in made:
                # preferred lifetime 0 (deprecated): the kernel never picks it as the
                # source of the client's other traffic (its TCP connections, the
                # resolver's answers), yet a socket bound to it sends from it
                if ip_version == 4:
                    nsr.addr("add", index=idx, address=address, prefixlen=V4_PREFIX,
                             preferred_lft=0)  # fmt: skip
                else:
                    nsr.addr("add", index=idx, address=address, prefixlen=V6_PREFIX,
                             flags=IFA_F_NODAD, preferred_lft=0)  # fmt: skip
        return made

    def path_counters(self) -> PathCounters:
        """The loss counters of the whole path (PathCounters), read now. Enters the
        namespaces on the calling thread (and returns it to its own)."""
        hosts: dict[str, LinkDrops] = {}
        for role, host in self.hosts.items():
            with enter_netns(host.ns):
                hosts[role] = _link_drops(host.ifname)
                if role == "victim":
                    stack = _stack_counters(VICTIM_STACK_COUNTERS)
        with enter_netns(self.bridge_ns):
            ports = {role: _link_drops(host.port) for role, host in self.hosts.items()}
        dropped, squeeze = _softnet()
        return PathCounters(hosts, ports, dropped, squeeze, stack)

    @contextlib.contextmanager
    def answers_to_spoofed_v6(self) -> Iterator[None]:
        """For the block, the victim routes SPOOFED_V6 (the spoofed IPv6 sources of
        lab.trafgen's floods) to the attacker's address: the victim's answers to a
        spoofed flood (SYN-ACKs) then leave its interface, as they would on the
        Internet, and end in the attacker's namespace (which does not forward them).
        Without it they find no route and the victim's kernel drops them before
        sending. Not a default route: IPv4's random sources stay unanswerable."""
        from pyroute2 import NetNS

        with NetNS(self.victim_ns, flags=0) as nsr:
            nsr.route("add", dst=SPOOFED_V6, gateway=self.attacker_v6)
        try:
            yield
        finally:
            if (NETNS_DIR / self.victim_ns).exists():
                with contextlib.suppress(Exception), NetNS(self.victim_ns, flags=0) as nsr:
                    nsr.route("del", dst=SPOOFED_V6, gateway=self.attacker_v6)

    # ---------- the hosts, under the names the flood runner knows -----------------------

    @property
    def attacker(self) -> Host:
        return self.hosts["attacker"]

    @property
    def victim(self) -> Host:
        return self.hosts["victim"]

    @property
    def client(self) -> Host:
        return self.hosts["client"]

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


@atexit.register
def _cleanup_at_exit() -> None:
    for lab in list(_live):
        lab.destroy()
