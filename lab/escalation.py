"""The BGP escalation lab: the whole loop of `lab.demo.Stack` (`ftcontrol serve` and
`ftagent run` in the victim namespace, floods from the attacker's) plus BIRD 2 as the
upstream router, peered with the victim namespace, where `ftcontrol serve --bgp-config`
starts and supervises its own ExaBGP. For the automatic-escalation e2e test and bench.

    with EscalationStack(workdir, bgp_overrides={"withdraw_hold_down_s": 2}) as s:
        s.start()
        s.set_policy("flowspec", uplink_mbps=50)
        s.flowspec_routes()        # BGP routes in BIRD's flow4 table (birdc)

The node's address (the victim's 10.77.0.2) is inside the workspace's declared prefix
10.77.0.0/24, so ftcontrol may announce it. Nothing has a default route; BIRD's namespace
is removed with the rest by close().
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import Any

import msgspec

from lab.bird import FLOW4, BgpLab, BirdRoute, config_toml, speaker_config
from lab.demo import Stack
from lab.netns import V4_PREFIX, Lab

WORKSPACE = "demo"  # the name Stack gives its workspace


@dataclass
class EscalationStack(Stack):
    # BgpConfig fields for the speaker's file (escalate_uplink_share, withdraw_hold_down_s ...)
    bgp_overrides: dict[str, Any] = field(default_factory=dict)
    # agent config sections merged over the lab's (e.g. {"link": {"saturation_s": 1}})
    agent_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    bgp: BgpLab | None = None

    def start(self, on_step: Callable[[str], None] = lambda _: None, agent: bool = True) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        on_step("building the namespace lab and BIRD's namespace, peered with the victim")
        self.lab = Lab.create()
        self.bgp = BgpLab.create(speaker_ns=self.lab.victim_ns)
        bgp_config = self.workdir / "bgp.toml"
        bgp_config.write_text(config_toml(speaker_config(**self.bgp_overrides)), "utf-8")
        self.control_args = [*self.control_args, "--bgp-config", str(bgp_config)]
        self.token = self._workspace_token()
        self.declare_prefix(str(ip_network(f"{self.lab.victim_v4}/{V4_PREFIX}", strict=False)))
        on_step("starting the control plane (and its ExaBGP) in the victim namespace")
        self.start_control()
        if not agent:
            return
        on_step("registering the node with `ftagent deploy`")
        self._deploy()
        on_step("starting `ftagent run` on the victim interface")
        self.start_agent()

    def _deploy(self) -> None:
        super()._deploy()
        if not self.agent_overrides:
            return
        data = msgspec.toml.decode(self.config.read_bytes())
        for section, values in self.agent_overrides.items():
            data.setdefault(section, {}).update(values)
        fd = os.open(self.config, os.O_WRONLY | os.O_TRUNC)
        with os.fdopen(fd, "wb") as fh:  # keeps the 0600 mode deploy gave it
            fh.write(msgspec.toml.encode(data))

    def close(self) -> None:
        super().close()
        if self.bgp is not None:
            self.bgp.destroy()
            self.bgp = None

    def _bird(self) -> BgpLab:
        if self.bgp is None:
            raise RuntimeError("the stack is not started")
        return self.bgp

    def declare_prefix(self, prefix: str) -> None:
        """`ftcontrol workspace prefixes demo add PREFIX`: what ftcontrol may announce."""
        done = subprocess.run(
            [sys.executable, "-m", "control.cli", "workspace", "prefixes", WORKSPACE, "add",
             prefix, "--db", str(self.db)],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"declaring {prefix} failed: {done.stderr.strip()}")

    def set_policy(self, policy: str, uplink_mbps: float) -> dict[str, Any]:
        """PATCH the node's upstream mitigation policy and declared uplink capacity."""
        r = self.request(
            "PATCH",
            f"/api/v1/nodes/{self.node_uuid}",
            json={"mitigation_policy": policy, "uplink_mbps": uplink_mbps},
        )
        r.raise_for_status()
        node: dict[str, Any] = r.json()["node"]
        return node

    def session_established(self) -> bool:
        return self._bird().session_state() == "Established"

    def flowspec_routes(self) -> list[BirdRoute]:
        """The BGP routes in BIRD's flow4 table (the lab's static routes left out)."""
        routes = self._bird().routes(FLOW4)
        return [r for r in routes if r.attributes.get("Type", "").startswith("BGP")]
