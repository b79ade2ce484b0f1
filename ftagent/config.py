"""The agent's configuration: one TOML file decoded once into msgspec Structs.

Every section forbids unknown keys, every number carries its allowed range, and a bad file
raises `ConfigError` whose message names the key and why (`ftagent run` exits 2 on it).
Keys fixed by the design: [agent] interface, state_dir; [control] server, api_key,
node_uuid; [mitigation] mode. Everything else is documented in the README (agent section).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from ftagent.datapath import IPNetwork
from ftcontract.bounds import (
    AttackSamples,
    BurstFactor,
    ConfirmWindows,
    IdleSamples,
    Multiplier,
    NonNegative,
    Positive,
    RuleTtl,
)
from ftcontract.severity import SeverityScale
from ftcontract.vocabulary import MitigationMode


class AgentSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    interface: str = "eth0"
    state_dir: str = "/var/lib/ftagent"
    # One detection window: counters are read this often (10 Hz by default).
    poll_interval_ms: Annotated[int, msgspec.Meta(ge=50, le=1000)] = 100
    # auto: native XDP if the driver supports it, else generic (skb) mode.
    xdp_mode: Literal["auto", "native", "generic"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json | text | auto (json when stderr is not a terminal).
    log_format: Literal["auto", "json", "text"] = "auto"
    # How many top sources an incident keeps (and source rules may target).
    top_sources: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    # Top-source entries not seen for this long are deleted from the kernel LRU map.
    source_idle_s: Positive = 60.0
    # Known sources (rules with spare_known pass them): 1 passed TCP/UDP packet in this
    # many per tracked source is looked up in the socket tables; 0 turns learning off.
    # A power of two (measured cost at 64: a few ns per passed packet, bench_datapath).
    learn_one_in: Annotated[int, msgspec.Meta(ge=0, le=65536)] = 64
    # Known sources from the UDP the node sends ("exchanged UDP both ways"): a TC egress
    # program marks the destination of 1 UDP datagram in this many (per CPU) as known;
    # 0 turns it off. Paused while a rule that passes known sources is in force.
    egress_learn_one_in: Annotated[int, msgspec.Meta(ge=0, le=65536)] = 4


class ControlConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Where to report. Used by ftagent.report; absent section: the agent runs stand-alone."""

    server: str
    api_key: str
    node_uuid: str
    heartbeat_interval_s: Positive = 5.0
    # 1-s points are sent in batches this often (larger batches after an outage).
    metrics_interval_s: Positive = 1.0
    config_interval_s: Positive = 60.0
    # How often the config is fetched while an attack is active.
    config_interval_attack_s: Positive = 10.0
    timeout_s: Positive = 5.0
    # Empty: <state_dir>/spool.
    spool_dir: str = ""
    spool_max_bytes: Annotated[int, msgspec.Meta(ge=0)] = 50 * 1024 * 1024
    verify_tls: bool = True
    # Keep a long poll open on the control plane's fleet orders (attacks spread over a
    # group of nodes): they, config changes and operator commands arrive within a second.
    fleet_watch: bool = True
    # How long the control plane may hold one poll (seconds, 1 to 30). Fleet orders carry
    # a TTL (60 s by default) that must stay above twice this: every answer renews it.
    fleet_wait_s: Annotated[int, msgspec.Meta(ge=1, le=30)] = 20


class BaselineConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # Rolling window of one-second aggregates.
    window_s: Annotated[int, msgspec.Meta(ge=10, le=86400)] = 300
    # Seconds of quiet traffic needed before learned thresholds replace the static floors.
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 60
    # Seconds seen in an hour-of-day bucket before that bucket is trusted.
    hour_min_samples: Annotated[int, msgspec.Meta(ge=1)] = 600
    # Percentiles are recomputed this often (seconds).
    recompute_interval_s: Annotated[int, msgspec.Meta(ge=1)] = 10
    persist_interval_s: Positive = 60.0
    # A persisted baseline older than this is discarded at start.
    max_age_s: Positive = 86400.0


class Floors(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Static minimum thresholds (per second); they apply alone until the baseline is ready."""

    pps: NonNegative = 5000.0
    bps: NonNegative = 50_000_000.0
    tcp_pps: NonNegative = 5000.0
    udp_pps: NonNegative = 5000.0
    icmp_pps: NonNegative = 1000.0
    fragment_pps: NonNegative = 1000.0
    syn_pps: NonNegative = 2000.0
    ack_pps: NonNegative = 5000.0
    rst_pps: NonNegative = 1000.0
    # Applies to UDP from each amplification source port separately.
    amp_port_pps: NonNegative = 1000.0


class DetectionConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    # threshold = max(floor, multiplier x effective p99)
    multiplier: Multiplier = 3.0
    # Consecutive windows above threshold that confirm an attack.
    confirm_windows: ConfirmWindows = 3
    # One window above burst_factor x threshold confirms at once.
    burst_factor: BurstFactor = 5.0
    # Seconds continuously below threshold before an incident resolves.
    cooldown_s: Positive = 10.0
    # The kernel wakes the loop between polls when a CPU's packet count in a short slot
    # (about 8 ms) says a burst may be under way: confirmation need not wait for the poll.
    # Off by default until a collateral flake is understood: in one full test run an IPv6
    # UDP flood opened from a wake-up window was widened to a source prefix holding the
    # lab's real client (tests/e2e/test_collateral_agent.py); polls alone never did.
    kernel_wake: bool = False
    floors: Floors = msgspec.field(default_factory=Floors)


# [severity]: the shared scale (ftcontract.severity), one definition for both sides.
SeverityConfig = SeverityScale


class MitigationConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    mode: MitigationMode = "on"
    rule_ttl_s: RuleTtl = 300.0
    # Rules stay this long after the incident resolved, then are removed.
    holddown_s: NonNegative = 60.0
    # Never blocked, never dropped (kernel allow-list). CIDR or single address.
    allowlist: list[str] = []
    # Management prefixes: never the target of a source or prefix rule.
    management_prefixes: list[str] = []
    max_rules: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 200
    # Sources are "few" (exact source rules instead of signatures) up to this many ...
    max_source_rules: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 16
    # ... when they carry at least this share of the attack traffic.
    source_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    # Rate-limit rules pass max(rate_limit_min_pps, multiplier x baseline p99).
    rate_limit_min_pps: Annotated[int, msgspec.Meta(ge=1)] = 1000
    # Rules that pass known sources (a UDP service's port, ICMP echo): sources first seen
    # during the attack share max(newcomer_min_pps, newcomer_share x the vector's rate) ...
    newcomer_share: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.005
    newcomer_min_pps: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] = 100
    # ... and one that sends again ("second chance": a random spoofed address almost never
    # repeats) passes up to this many packets per second of its own; 0 turns that off.
    newcomer_source_pps: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 100
    # Windows after a rule change before its effect is judged (and widened if it leaks).
    verify_windows: Annotated[int, msgspec.Meta(ge=1, le=100)] = 5
    # Prefix lengths used when widening source rules.
    widen_prefix_v4: Annotated[int, msgspec.Meta(ge=8, le=32)] = 24
    widen_prefix_v6: Annotated[int, msgspec.Meta(ge=16, le=128)] = 64
    # Set net.ipv4.tcp_syncookies to 1 at start when it is 0 (SYN rules hand SYNs for
    # listening ports to the kernel's SYN cookies); false: only warn (log and /health).
    enable_syncookies: bool = False


class CaptureConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    # Sampled packets per second aimed for: the kernel's 1-in-N follows the traffic rate.
    idle_samples_per_s: IdleSamples = 50
    attack_samples_per_s: AttackSamples = 2000
    # Seconds of samples kept before an attack and written at the head of its pcap.
    pre_attack_s: NonNegative = 5.0
    max_packets: Annotated[int, msgspec.Meta(ge=1)] = 20000
    max_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 2 * 1024 * 1024
    # pcaps kept under <state_dir>/pcap (oldest deleted first).
    keep_files: Annotated[int, msgspec.Meta(ge=1)] = 50


class LinkConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """When the agent reports the monitored link saturated (MetricPoint.link_saturated):
    receive losses (rx dropped + missed + fifo errors) of at least `saturation_lost_pps`
    for `saturation_s` seconds in a row; cleared after `clear_s` seconds below it."""

    saturation_lost_pps: Annotated[float, msgspec.Meta(gt=0, le=1e12)] = 1000.0
    saturation_s: Annotated[int, msgspec.Meta(ge=1, le=60)] = 3
    clear_s: Annotated[int, msgspec.Meta(ge=1, le=600)] = 10


class HttpConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    enabled: bool = True
    listen: str = "127.0.0.1"
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9477


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    agent: AgentSection = msgspec.field(default_factory=AgentSection)
    control: ControlConfig | None = None
    baseline: BaselineConfig = msgspec.field(default_factory=BaselineConfig)
    detection: DetectionConfig = msgspec.field(default_factory=DetectionConfig)
    severity: SeverityConfig = msgspec.field(default_factory=SeverityConfig)
    mitigation: MitigationConfig = msgspec.field(default_factory=MitigationConfig)
    capture: CaptureConfig = msgspec.field(default_factory=CaptureConfig)
    link: LinkConfig = msgspec.field(default_factory=LinkConfig)
    http: HttpConfig = msgspec.field(default_factory=HttpConfig)


class ConfigError(Exception):
    """A config file that cannot be used; the message names the key and the reason."""


_PATH_RE = re.compile(r" - at `\$\.?([^`]*)`$")


def _readable(err: msgspec.MsgspecError) -> str:
    text = str(err)
    m = _PATH_RE.search(text)
    key = m.group(1) if m else ""
    reason = text[: m.start()] if m else text
    field = re.fullmatch(r"Object (contains unknown|missing required) field `([^`]*)`", reason)
    if field is not None:
        key = f"{key}.{field.group(2)}" if key else field.group(2)
        reason = "unknown key" if field.group(1).startswith("contains") else "required key missing"
    return f"{key or '(top level)'}: {reason}"


def parse_networks(values: list[str], key: str) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for i, value in enumerate(values):
        try:
            out.append(ipaddress.ip_network(value, strict=False))
        except ValueError as exc:
            reason = f"{value!r} is not an IP address or prefix ({exc})"
            raise ConfigError(f"{key}[{i}]: {reason}") from exc
    return out


def _validate(cfg: Config) -> None:
    if not cfg.agent.interface:
        raise ConfigError("agent.interface: must not be empty")
    if not cfg.agent.state_dir:
        raise ConfigError("agent.state_dir: must not be empty")
    learn = cfg.agent.learn_one_in
    if learn & (learn - 1):
        raise ConfigError(f"agent.learn_one_in: must be 0 or a power of two, got {learn}")
    parse_networks(cfg.mitigation.allowlist, "mitigation.allowlist")
    parse_networks(cfg.mitigation.management_prefixes, "mitigation.management_prefixes")
    if cfg.control is not None:
        if not re.match(r"^https?://[^/\s]+", cfg.control.server):
            raise ConfigError("control.server: must be an http:// or https:// URL")
        if not cfg.control.api_key:
            raise ConfigError("control.api_key: must not be empty")
        if not re.fullmatch(r"[0-9a-fA-F-]{32,36}", cfg.control.node_uuid):
            raise ConfigError("control.node_uuid: must be a UUID")
    if cfg.capture.attack_samples_per_s < cfg.capture.idle_samples_per_s:
        raise ConfigError("capture.attack_samples_per_s: must be >= capture.idle_samples_per_s")


def decode(data: bytes | str) -> Config:
    """Decode and check TOML text; raise ConfigError naming the offending key."""
    try:
        cfg = msgspec.toml.decode(data, type=Config)
    except msgspec.ValidationError as exc:
        raise ConfigError(_readable(exc)) from exc
    except msgspec.DecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}") from exc
    _validate(cfg)
    return cfg


def load(path: str | Path) -> Config:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from exc
    return decode(data)


def encode(cfg: Config) -> bytes:
    """TOML text of a config (used by tests and `ftagent deploy`); None sections are left out."""
    as_dict = msgspec.to_builtins(cfg)
    return msgspec.toml.encode({k: v for k, v in as_dict.items() if v is not None})
