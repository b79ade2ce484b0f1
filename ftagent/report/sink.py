"""`ControlSink`: the agent loop's EventSink (ftagent.events) backed by the Reporter.

It translates the loop's plain dicts into Agent API messages and hands them to the
reporter's queue. Operator commands (block/unblock from the REST API) are applied here,
in `poll_overrides`, i.e. on the loop's own thread: a rule is one map update, so the loop
does not wait. Every datapath call here holds `lock`, which must be the agent's datapath
lock (`Agent(..., lock=...)`): the agent's HTTP scrapes read the same maps from another
thread.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from ftagent import __version__
from ftagent.config import Config
from ftagent.datapath import Datapath, IPNetwork, RuleSpec
from ftagent.events import Overrides
from ftagent.report.reporter import Reporter, ReporterSettings
from ftcontract import agent_api

log = logging.getLogger("ftagent.report")

SPOOL_FILE = "reports.db"


def settings_from_config(cfg: Config) -> ReporterSettings:
    control = cfg.control
    if control is None:
        raise ValueError("the config has no [control] section")
    spool_dir = Path(control.spool_dir or Path(cfg.agent.state_dir) / "spool")
    return ReporterSettings(
        server=control.server,
        api_key=control.api_key,
        node_uuid=control.node_uuid,
        spool_path=spool_dir / SPOOL_FILE,
        heartbeat_interval_s=control.heartbeat_interval_s,
        metrics_interval_s=control.metrics_interval_s,
        config_interval_s=control.config_interval_s,
        config_interval_attack_s=control.config_interval_attack_s,
        timeout_s=control.timeout_s,
        spool_max_bytes=control.spool_max_bytes,
        verify_tls=control.verify_tls,
    )


def _percent_shares(shares: dict[str, Any]) -> dict[str, float]:
    values = {k: float(v) for k, v in shares.items() if isinstance(v, int | float)}
    # The loop reports fractions (0..1); the API shows percent.
    scale = 100.0 if values and sum(values.values()) <= 1.0001 else 1.0
    return {k: round(v * scale, 2) for k, v in values.items()}


_MITIGATING_ACTIONS = ("rules_added", "widened")


def _unix(value: Any) -> float | None:
    """Unix seconds from a number or an ISO-8601 UTC text ("...Z"); None otherwise."""
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _rule_figure(described: str, ttl_s: float | None) -> agent_api.RuleFigure:
    kind: Any = "signature"
    if described.startswith("src "):
        kind = "source"
    elif described.startswith("prefix "):
        kind = "prefix"
    rate_limited = "rate<=" in described
    return agent_api.RuleFigure(
        kind="rate_limit" if rate_limited else kind,
        match=described,
        action="rate_limit" if rate_limited else "drop",
        ttl_sec=int(ttl_s) if ttl_s else None,
    )


class ControlSink:
    def __init__(
        self,
        cfg: Config,
        datapath: Datapath | None = None,
        settings: ReporterSettings | None = None,
        *,
        lock: threading.RLock | None = None,
    ) -> None:
        self._cfg = cfg
        self._datapath = datapath
        self._lock = lock if lock is not None else threading.RLock()
        self._reporter = Reporter(settings or settings_from_config(cfg), self._status)
        self._seq: dict[str, int] = {}
        self._last_point: dict[str, Any] = {}
        self._started = time.monotonic()
        self._mitigation_mode = cfg.mitigation.mode
        self._last_overrides: Overrides | None = None
        self._protected = self._protected_networks(cfg)

    @property
    def reporter(self) -> Reporter:
        return self._reporter

    # ---- EventSink ---------------------------------------------------------------------

    def start(self) -> None:
        self._reporter.start()

    def close(self) -> None:
        self._reporter.stop()

    def metrics_second(self, point: dict[str, Any]) -> None:
        self._last_point = point
        self._reporter.set_attack(bool(point.get("attack_active")))
        self._reporter.report_metrics(self._metric_point(point))

    def incident_opened(self, incident: dict[str, Any]) -> None:
        uuid = str(incident["uuid"])
        started = float(incident.get("started_at_unix") or time.time())
        self._reporter.report_incident_opened(uuid, started, self._figures(incident))

    def incident_updated(self, incident: dict[str, Any], escalated: bool) -> None:
        self._reporter.report_incident_updated(str(incident["uuid"]), self._figures(incident))

    def incident_resolved(self, incident: dict[str, Any]) -> None:
        uuid = str(incident["uuid"])
        ended = float(incident.get("ended_at_unix") or time.time())
        self._reporter.report_incident_resolved(uuid, ended, self._figures(incident))
        self._seq.pop(uuid, None)

    def rule_changed(self, change: dict[str, Any]) -> None:
        # Rules reach the control plane inside the incident figures (with drop counts);
        # a separate stream of rule events would say the same thing twice.
        return None

    def pcap_ready(self, incident_uuid: str, path: str) -> None:
        self._reporter.report_pcap(incident_uuid, Path(path))

    def poll_overrides(self) -> Overrides | None:
        cfg = self._reporter.take_control()
        if cfg is None:
            return None
        if cfg.commands:
            with self._lock:
                acks = [self._apply(c) for c in cfg.commands]
            self._reporter.ack_commands(acks)
        if cfg.mitigation_mode is not None:
            self._mitigation_mode = cfg.mitigation_mode
        overrides = Overrides(
            mitigation_mode=cfg.mitigation_mode,
            multiplier=cfg.thresholds.multiplier,
            burst_factor=cfg.thresholds.burst_factor,
            confirm_windows=cfg.thresholds.confirm_windows,
            cooldown_s=cfg.thresholds.cooldown_s,
            rule_ttl_s=cfg.rule_ttl_s,
            floors=cfg.thresholds.floors,
            allowlist=cfg.allowlist,
            idle_samples_per_s=cfg.sampling.idle_samples_per_s,
            attack_samples_per_s=cfg.sampling.attack_samples_per_s,
        )
        if overrides == self._last_overrides:
            return None
        self._last_overrides = overrides
        return overrides

    # ---- translation -------------------------------------------------------------------

    def _status(self) -> agent_api.Heartbeat:
        p = self._last_point
        info = self._datapath.attach_info if self._datapath is not None else None
        return agent_api.Heartbeat(
            version=__version__,
            xdp_mode=info.mode if info is not None else "none",
            interface=info.interface if info is not None else self._cfg.agent.interface,
            baseline_state="ready" if p.get("baseline_ready") else "learning",
            attack_state="attack" if p.get("attack_active") else "normal",
            uptime_s=round(time.monotonic() - self._started, 1),
            pps=float(p.get("pps", 0.0)),
            rules_active=int(p.get("rules_active", 0)),
            mitigation_mode=self._mitigation_mode,
        )

    @staticmethod
    def _metric_point(p: dict[str, Any]) -> agent_api.MetricPoint:
        pps = float(p.get("pps", 0.0))
        protocols = {
            name: float(p.get(f"{name}_pps", 0.0)) for name in ("tcp", "udp", "icmp", "fragment")
        }
        # fragments are also counted in their protocol; "other" is what no class took
        protocols["other"] = max(0.0, pps - protocols["tcp"] - protocols["udp"] - protocols["icmp"])
        flags = {name: float(p.get(f"{name}_pps", 0.0)) for name in ("syn", "ack", "rst")}
        base = p.get("baseline") or {}
        base_pps = base.get("pps") if isinstance(base, dict) else None
        ready = bool(p.get("baseline_ready")) and isinstance(base_pps, dict)
        return agent_api.MetricPoint(
            ts=float(p["ts"]),
            pps=pps,
            bps=float(p.get("bps", 0.0)),
            dropped_pps=float(p.get("dropped_pps", 0.0)),
            dropped_bps=float(p.get("dropped_bps", 0.0)),
            protocols=protocols,
            tcp_flags=flags,
            attack=bool(p.get("attack_active")),
            baseline_avg_pps=float(base_pps["avg"]) if ready and base_pps else None,
            baseline_p95_pps=float(base_pps["p95"]) if ready and base_pps else None,
            baseline_p99_pps=float(base_pps["p99"]) if ready and base_pps else None,
        )

    def _figures(self, inc: dict[str, Any]) -> agent_api.IncidentFigures:
        uuid = str(inc["uuid"])
        seq = self._seq.get(uuid, 0) + 1
        self._seq[uuid] = seq
        mitigated_at = next(
            (
                _unix(m.get("at"))
                for m in inc.get("mitigation") or []
                if m.get("action") in _MITIGATING_ACTIONS and _unix(m.get("at")) is not None
            ),
            None,
        )
        ttl = self._cfg.mitigation.rule_ttl_s
        return agent_api.IncidentFigures(
            seq=seq,
            family=inc.get("family", "unknown"),
            subtype=inc.get("subtype"),
            severity=inc.get("severity") or "low",
            peak_pps=float(inc.get("peak_pps", 0.0)),
            peak_bps=float(inc.get("peak_bps", 0.0)),
            current_pps=float(inc.get("current_pps", inc.get("mean_pps", 0.0))),
            baseline_p99_pps=inc.get("baseline_pps"),
            threshold_pps=inc.get("threshold_pps"),
            protocols=_percent_shares(inc.get("protocol_breakdown") or {}),
            top_sources=[
                agent_api.SourceFigure(
                    ip=str(s["address"]), pps=float(s.get("pps", 0.0)), bps=float(s.get("bps", 0.0))
                )
                for s in inc.get("top_sources") or []
            ],
            source_count=int(inc.get("source_count") or 0),
            evidence=dict(inc.get("evidence") or {}),
            rules=self._rule_figures([str(r) for r in inc.get("rules") or []], ttl),
            mitigated_at=mitigated_at,
        )

    def _rule_figures(self, described: list[str], ttl_s: float) -> list[agent_api.RuleFigure]:
        if not described:
            return []
        # Per-rule drop counts live in the kernel's rule maps (read only at incident
        # reports, at most once a second).
        dropped: dict[str, int] = {}
        if self._datapath is not None:
            try:
                with self._lock:
                    rules = self._datapath.list_rules()
                dropped = {r.spec.describe(): r.dropped_packets for r in rules}
            except Exception as exc:  # a map read failing must not stop the report
                log.debug("rule counters unavailable: %s", exc)
        return [
            msgspec.structs.replace(_rule_figure(d, ttl_s), dropped_packets=dropped.get(d, 0))
            for d in described
        ]

    # ---- operator commands -------------------------------------------------------------

    @staticmethod
    def _protected_networks(cfg: Config) -> list[IPNetwork]:
        """What an operator rule must never block: the control plane and management nets."""
        out: list[IPNetwork] = []
        for text in cfg.mitigation.management_prefixes:
            out.append(ipaddress.ip_network(text, strict=False))
        host = urlsplit(cfg.control.server).hostname if cfg.control else None
        try:
            if host:
                out.append(ipaddress.ip_network(host))
        except ValueError:
            pass  # a DNS name: resolved addresses are not known here
        return out

    def _apply(self, cmd: agent_api.RuleCommand) -> agent_api.CommandAck:
        if self._datapath is None:
            return agent_api.CommandAck(id=cmd.id, ok=False, error="agent runs without a datapath")
        try:
            net = ipaddress.ip_network(cmd.target, strict=False)
        except ValueError:
            return agent_api.CommandAck(id=cmd.id, ok=False, error=f"not an address: {cmd.target}")
        spec = RuleSpec(kind="src" if net.num_addresses == 1 else "prefix", network=net)
        try:
            if cmd.action == "block":
                hit = next(
                    (p for p in self._protected if p.version == net.version and p.overlaps(net)),
                    None,
                )
                if hit is not None:
                    return agent_api.CommandAck(
                        id=cmd.id, ok=False, error=f"{net} covers protected network {hit}"
                    )
                self._datapath.add_rule(spec, cmd.ttl_s)
                log.info("operator rule %s: block %s for %.0f s", cmd.id, net, cmd.ttl_s)
                return agent_api.CommandAck(id=cmd.id, ok=True)
            removed = self._datapath.remove_rule(spec)
            log.info("operator rule %s: unblock %s", cmd.id, net)
            return agent_api.CommandAck(
                id=cmd.id, ok=True, error="" if removed else "was not blocked"
            )
        except Exception as exc:  # a full rule map or a kernel error: tell the operator
            return agent_api.CommandAck(id=cmd.id, ok=False, error=f"{type(exc).__name__}: {exc}")
