"""Local HTTP on 127.0.0.1:9477: Prometheus `/metrics` and JSON `/health`.

`/metrics` is a custom collector: counters are read from the kernel maps at scrape time
(not copied from the loop), gauges come from the loop's latest state.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from ftagent.datapath import Counters, Rule
from ftagent.link import LinkState
from ftagent.rates import DROP_VERDICTS

log = logging.getLogger("ftagent.http")
CONTENT_TYPE_PROMETHEUS = "text/plain; version=0.0.4; charset=utf-8"


class AgentView(Protocol):
    """What the HTTP side reads from the running agent (all calls thread-safe)."""

    def scrape_counters(self) -> Counters: ...

    def scrape_rules(self) -> list[Rule]: ...

    def health(self) -> dict[str, Any]: ...

    def gauges(self) -> dict[str, Any]: ...


def _labelled(name: str, text: str, label: str, values: dict[str, int]) -> Metric:
    """One counter family with a sample per key of `values`."""
    family = CounterMetricFamily(name, text, labels=[label])
    for key, value in values.items():
        family.add_metric([key], value)
    return family


class AgentCollector(Collector):
    def __init__(self, view: AgentView) -> None:
        self.view = view

    def collect(self) -> Iterator[Metric]:
        c = self.view.scrape_counters()
        g = self.view.gauges()
        rules = self.view.scrape_rules()
        now = time.monotonic_ns()
        yield _labelled("ftagent_packets", "Packets received, by class", "proto", c.packets)
        yield _labelled("ftagent_bytes", "Bytes received, by class", "proto", c.bytes)
        yield _labelled("ftagent_tcp_flags_packets", "TCP packets by flags", "flags", c.tcp_flags)
        yield _labelled(
            "ftagent_udp_source_port_packets",
            "UDP packets by source port",
            "port",
            c.udp_src_port_packets,
        )
        yield _labelled("ftagent_packet_size_packets", "Packets by size", "size", c.sizes)
        dp = CounterMetricFamily(
            "ftagent_dropped_packets", "Packets dropped in XDP, by reason", labels=["reason"]
        )
        db = CounterMetricFamily(
            "ftagent_dropped_bytes", "Bytes dropped in XDP, by reason", labels=["reason"]
        )
        for reason in DROP_VERDICTS:
            dp.add_metric([reason], c.verdicts.get(reason, 0))
            db.add_metric([reason], c.verdict_bytes.get(reason, 0))
        yield dp
        yield db
        yield _labelled("ftagent_verdict_packets", "Packets by verdict", "verdict", c.verdicts)
        for metric in ("pps", "bps"):
            bl = GaugeMetricFamily(
                f"ftagent_baseline_{metric}", f"Learned baseline of {metric}", labels=["quantile"]
            )
            for q, v in g["baseline"].get(metric, {}).items():
                bl.add_metric([q], v)
            yield bl
            th = GaugeMetricFamily(f"ftagent_threshold_{metric}", f"Detection threshold ({metric})")
            th.add_metric([], g["thresholds"].get(metric, 0.0))
            yield th
            cur = GaugeMetricFamily(f"ftagent_current_{metric}", f"Last window's {metric}")
            cur.add_metric([], g["current"].get(metric, 0.0))
            yield cur
        for name, text, value in (
            ("ftagent_baseline_ready", "1 when learned thresholds apply", g["baseline_ready"]),
            ("ftagent_attack_active", "1 while an incident is active", g["attack_active"]),
            (
                "ftagent_rules_active",
                "Drop rules in the kernel",
                sum(1 for r in rules if r.expires_ns > now),
            ),
            ("ftagent_sample_one_in", "Kernel sampling ratio (1 in N)", g["sample_one_in"]),
            ("ftagent_uptime_seconds", "Seconds since the agent started", g["uptime_s"]),
        ):
            gm = GaugeMetricFamily(name, text)
            gm.add_metric([], float(value))
            yield gm
        yield _labelled("ftagent_incidents", "Incidents opened", "family", g["incidents"])
        yield from _link(g["link"])
        yield from _rule_counters(rules)
        yield _xdp_attached(self.view.health())


def _rule_counters(rules: list[Rule]) -> Iterator[Metric]:
    """Per rule (label: its description, as `ftagent rules` shows it): what it dropped and
    what it spared (passed because a socket of the node wanted it). Bounded by the rule
    tables' sizes."""
    for what, text in (("dropped", "dropped by the rule"), ("spared", "spared by the rule")):
        for unit in ("packets", "bytes"):
            family = CounterMetricFamily(
                f"ftagent_rule_{what}_{unit}", f"{unit.capitalize()} {text}", labels=["rule"]
            )
            for r in rules:
                family.add_metric([r.spec.describe()], getattr(r, f"{what}_{unit}"))
            yield family


def _link(state: LinkState) -> Iterator[Metric]:
    """The monitored link's receive losses (as of the loop's last second) and verdict."""
    lost = GaugeMetricFamily(
        "ftagent_link_rx_lost_pps",
        "Packets per second the interface lost before XDP (rx dropped + missed + fifo)",
    )
    lost.add_metric([], state.rx_lost_pps)
    yield lost
    saturated = GaugeMetricFamily(
        "ftagent_link_saturated", "1 while the agent judges the monitored link saturated"
    )
    saturated.add_metric([], float(state.saturated))
    yield saturated
    if state.losses is not None:
        yield _labelled(
            "ftagent_link_rx_lost_packets",
            "Packets the interface lost before XDP, by counter (as of the last second)",
            "counter",
            {
                "rx_dropped": state.losses.dropped,
                "rx_missed_errors": state.losses.missed,
                "rx_fifo_errors": state.losses.fifo,
            },
        )


def _xdp_attached(health: dict[str, Any]) -> Metric:
    """1 while the kernel still runs OUR program on the interface (asked at scrape time:
    another tool may have replaced or removed it); `mode` says native or generic."""
    from ftagent.bpf.xdp import ifindex_of, xdp_prog_id

    interface = str(health.get("interface", ""))
    ours = int(health.get("prog_id") or 0)
    try:
        attached = ours != 0 and xdp_prog_id(ifindex_of(interface)) == ours
    except Exception:  # the interface is gone: nothing is attached
        attached = False
    family = GaugeMetricFamily(
        "ftagent_xdp_attached",
        "1 while the agent's XDP program is attached to the interface",
        labels=["interface", "mode"],
    )
    family.add_metric([interface, str(health.get("xdp_mode", ""))], float(attached))
    return family


def _handler(registry: CollectorRegistry, health: Callable[[], dict[str, Any]]) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "ftagent"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    body = generate_latest(registry)
                    ctype = CONTENT_TYPE_PROMETHEUS
                elif path == "/health":
                    body = json.dumps(health(), default=str).encode()
                    ctype = "application/json"
                else:
                    self.send_error(404, "not found (try /metrics or /health)")
                    return
            except Exception as exc:  # a failed scrape is a 500, never a dead server
                log.exception("scrape of %s failed", path)
                self.send_error(500, f"scrape failed: {exc}")
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("http: " + format, *args)

    return Handler


class LocalHttp:
    def __init__(self, view: AgentView, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(view))
        self.server = ThreadingHTTPServer((host, port), _handler(self.registry, view.health))
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="ftagent-http", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
