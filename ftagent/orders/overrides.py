"""The control plane's overrides (`agent_api.Overrides`) applied to the running agent.

Each push carries the control plane's whole set: a key it leaves out (None) goes back to
this node's own config, so clearing an override really clears it. Everything is checked
before anything is applied: a refused set (ConfigError naming the key) changes nothing.
"""

from __future__ import annotations

import logging
import threading

import msgspec

from ftagent.config import CaptureConfig, Config, ConfigError, parse_networks
from ftagent.datapath import Datapath
from ftagent.detect.detector import Detector
from ftagent.detect.reference import Reference
from ftagent.evidence.sampling import Sampler
from ftagent.mitigate.mitigator import Mitigator
from ftagent.mitigate.protection import Protection
from ftcontract import agent_api

log = logging.getLogger("ftagent.agent")


def effective_sampling(capture: CaptureConfig, s: agent_api.Sampling) -> tuple[int, int]:
    """(idle, attack) sampled packets per second after the control plane's overrides.

    None keeps the config's value; the result is checked like the config."""
    idle = capture.idle_samples_per_s if s.idle_samples_per_s is None else s.idle_samples_per_s
    attack = (
        capture.attack_samples_per_s if s.attack_samples_per_s is None else s.attack_samples_per_s
    )
    if idle < 0:
        raise ConfigError(f"control.sampling.idle_samples_per_s: must be >= 0 (got {idle})")
    if attack < 1:
        raise ConfigError(f"control.sampling.attack_samples_per_s: must be >= 1 (got {attack})")
    if attack < idle:
        raise ConfigError(
            "control.sampling.attack_samples_per_s: must be >= idle_samples_per_s "
            f"({attack} < {idle})"
        )
    return idle, attack


class OverrideApplier:
    """Applies an override set to the objects that hold the settings it covers."""

    def __init__(
        self,
        cfg: Config,
        reference: Reference,
        detector: Detector,
        mitigator: Mitigator,
        protection: Protection,
        sampler: Sampler,
        datapath: Datapath,
        lock: threading.RLock,
    ) -> None:
        self.cfg = cfg
        self.reference = reference
        self.detector = detector
        self.mitigator = mitigator
        self.protection = protection
        self.sampler = sampler
        self.dp = datapath
        self.lock = lock

    def apply(self, o: agent_api.Overrides, pps: float) -> None:
        """`pps`: the current rate (the sampling ratio is set for it)."""
        idle, attack = effective_sampling(self.cfg.capture, o.sampling)
        allowlist = parse_networks(
            self.cfg.mitigation.allowlist if o.allowlist is None else o.allowlist,
            "control.allowlist",
        )
        d, m, t = self.cfg.detection, self.cfg.mitigation, o.thresholds
        s = self.reference.settings
        s.multiplier = d.multiplier if t.multiplier is None else t.multiplier
        s.burst_factor = d.burst_factor if t.burst_factor is None else t.burst_factor
        s.confirm_windows = d.confirm_windows if t.confirm_windows is None else t.confirm_windows
        s.cooldown_s = d.cooldown_s if t.cooldown_s is None else t.cooldown_s
        floors = {k: float(v) for k, v in (t.floors or {}).items() if hasattr(d.floors, k)}
        s.floors = msgspec.structs.replace(d.floors, **floors)
        self.detector.burst_factor = s.burst_factor
        self.detector.confirm_windows = s.confirm_windows
        self.detector.cooldown_s = s.cooldown_s
        self.mitigator.ttl_s = m.rule_ttl_s if o.rule_ttl_s is None else o.rule_ttl_s
        if self.protection.set_allowlist(allowlist):
            with self.lock:
                self.dp.set_allowlist(self.protection.kernel_allowlist())
        mode = m.mode if o.mitigation_mode is None else o.mitigation_mode
        if mode != self.mitigator.mode:
            log.info("mitigation mode %s -> %s (control plane)", self.mitigator.mode, mode)
            if mode != "on":
                with self.lock:
                    self.mitigator.remove_all()
            self.mitigator.mode = mode
        sampler = self.sampler
        if (idle, attack) != (sampler.idle_samples_per_s, sampler.attack_samples_per_s):
            log.info(
                "sampling %d/%d -> %d/%d per s idle/attack (control plane)",
                sampler.idle_samples_per_s,
                sampler.attack_samples_per_s,
                idle,
                attack,
            )
            hot = self.detector.attack or self.detector.pending
            sampler.set_targets(idle, attack, hot, pps)
        if not self.detector.attack:
            self.reference.refresh()
        # `extra` keys must not collide with LogRecord's own attributes (not "args", "msg").
        log.info(
            "control-plane overrides applied",
            extra={"event": "overrides_applied", "overrides": msgspec.to_builtins(o)},
        )
