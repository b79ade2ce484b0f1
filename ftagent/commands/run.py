"""`ftagent run`: attach XDP to the configured interface and run the loop until stopped.

Exit status: 0 after a clean stop (SIGTERM/SIGINT), 1 when the data path cannot start,
2 for a bad config (the message names the key).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from ftagent.config import Config, ConfigError, load
from ftagent.events import EventSink, NullSink
from ftagent.local import logs

log = logging.getLogger("ftagent.run")


def make_sink(cfg: Config) -> EventSink:
    """The control-plane sink, or NullSink without [control]."""
    if cfg.control is None:
        log.info("no [control] section: running stand-alone (detection and mitigation only)")
        return NullSink()
    from ftagent.report.sink import ControlSink

    return ControlSink(cfg)


def cmd_run(args: argparse.Namespace) -> int:
    try:
        cfg = load(args.config)
    except ConfigError as exc:
        print(f"ftagent: bad config {args.config}: {exc}", file=sys.stderr)
        return 2
    logs.setup(cfg.agent.log_level, cfg.agent.log_format)
    return run(cfg)


def run(cfg: Config, stop: threading.Event | None = None) -> int:
    """Run until `stop` is set (or SIGTERM/SIGINT in the main thread); returns the exit code."""
    stop = stop or threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        return _run(cfg, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(cfg: Config, stop: threading.Event) -> int:
    from ftagent.agent import Agent
    from ftagent.bpf.loader import LoadOptions, Settings, XdpDatapath
    from ftagent.local.http_local import LocalHttp
    from ftagent.mitigate.netinfo import control_networks, own_networks
    from ftagent.orders.fleet import FleetInbox

    try:
        Path(cfg.agent.state_dir).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log.error("cannot create state_dir %s: %s", cfg.agent.state_dir, exc)
        return 1
    try:
        # keep_pins: a restart finds the same build pinned and reuses it (no compile; the
        # rules in force stay, still expiring by TTL in the kernel).
        dp = XdpDatapath.open(
            cfg.agent.interface,
            LoadOptions(mode=cfg.agent.xdp_mode, keep_pins=True),
            Settings(
                learn_one_in=cfg.agent.learn_one_in,
                egress_learn_one_in=cfg.agent.egress_learn_one_in,
                newcomer_source_pps=cfg.mitigation.newcomer_source_pps,
            ),
        )
    except Exception as exc:
        log.error("cannot start the XDP data path on %s: %s", cfg.agent.interface, exc)
        return 1
    http: LocalHttp | None = None
    try:
        try:
            control = control_networks(cfg.control.server) if cfg.control else []
            sink = make_sink(cfg)
            # The fleet orders the control-plane sink's watcher receives (none stand-alone).
            inbox = getattr(sink, "fleet_inbox", None)
            # The reporter's state for /health (`ftagent status`), asked by the loop.
            reporting = getattr(sink, "reporting_state", None)
            agent = Agent(
                cfg,
                dp,
                sink,
                own_networks=own_networks(),
                control_networks=control,
                fleet_inbox=inbox if isinstance(inbox, FleetInbox) else None,
                reporting=reporting if callable(reporting) else None,
            )
        except Exception as exc:
            log.exception("cannot start the agent: %s", exc)
            return 1
        if cfg.http.enabled:
            try:
                http = LocalHttp(agent.snapshot, cfg.http.listen, cfg.http.port)
                http.start()
                log.info("local http on %s:%d (/metrics, /health)", cfg.http.listen, http.port)
            except OSError as exc:
                log.error("local http on %s:%d failed: %s", cfg.http.listen, cfg.http.port, exc)
        try:
            agent.run(stop)
        except Exception as exc:
            log.exception("the agent loop failed: %s", exc)
            return 1
    finally:
        if http is not None:
            http.close()
        dp.close()
    return 0
