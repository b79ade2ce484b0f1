"""Name an attack from the counters (`ftcontract.classify`, the definition the control
plane's fleet detection uses too), then refine it from the sampled packets.

Samples refine the subtype (destination-port spread, ICMP type, source spread) and give
the top destination ports and source count.
"""

from __future__ import annotations

from ftagent.detect.rates import Window
from ftagent.evidence.samples import SampleSummary
from ftcontract.classify import AMP_FAMILY as AMP_FAMILY
from ftcontract.classify import AMP_PORT_OF as AMP_PORT_OF
from ftcontract.classify import REFLECTION_NAME as REFLECTION_NAME
from ftcontract.classify import Classification as Classification
from ftcontract.classify import Rates, classify_rates, rate_subtype
from ftcontract.classify import Vector as Vector

DST_PORT_FOCUS = 0.80


def window_rates(w: Window) -> Rates:
    return Rates(w.metrics, w.udp_port_pps, w.class_pps.get("ipv6", 0.0))


def classify(
    w: Window, base: dict[str, float], samples: SampleSummary | None = None, few_sources: int = 16
) -> Classification:
    """`w`: the attack's rates (e.g. the confirming windows merged); `base`: baseline avg
    per metric (empty when not ready); `samples`: what sampling saw during those windows."""
    cls = classify_rates(window_rates(w), base)
    if samples is None or not samples.count:
        return cls
    evidence = dict(cls.evidence)
    evidence["samples"] = samples.count
    evidence["sampled_sources"] = len(samples.sources)
    evidence["top_dst_ports"] = samples.top_dst_ports()
    subtype = cls.subtype
    if cls.family != "multi_vector" and cls.vectors:
        subtype = _subtype(cls.family, cls.vectors[0], evidence, samples, few_sources)
    return Classification(cls.family, subtype, cls.vectors, evidence)


def _subtype(
    family: str,
    vector: Vector,
    evidence: dict[str, object],
    samples: SampleSummary,
    few_sources: int,
) -> str:
    base = rate_subtype(family, vector, evidence)
    if family.endswith("_amplification") or (family == "udp_flood" and "reflection" in evidence):
        return base
    spread = ""
    if family in ("udp_flood", "tcp_flood", "syn_flood", "ack_flood", "rst_flood"):
        top = samples.top_dst_ports(1)
        if top and float(top[0]["share"]) >= DST_PORT_FOCUS:
            spread = f"_dst_port_{top[0]['port']}"
        elif samples.dst_ports:
            spread = "_random_dst_ports"
    if family in ("syn_flood", "ack_flood", "rst_flood", "tcp_flood"):
        many = len(samples.sources) > few_sources
        spread += "_many_sources" if many else "_few_sources"
    if family == "icmp_flood" and samples.icmp_types:
        icmp_type = samples.icmp_types.most_common(1)[0][0]
        names = {8: "echo_request", 0: "echo_reply", 128: "echo_request", 129: "echo_reply"}
        spread = "_" + names.get(icmp_type, f"type_{icmp_type}")
    return f"{base}{spread}"
