import pytest

from ftagent.evidence.classifier import classify
from ftagent.evidence.samples import summarize
from ftcontract.vocabulary import FAMILIES
from tests.unit.agent.packets import icmp, icmp6, syn, udp
from tests.unit.agent.synth import window


@pytest.mark.parametrize(
    ("family", "rates"),
    [
        ("udp_flood", {"udp": 50_000}),
        ("syn_flood", {"tcp": 50_000, "syn": 48_000}),
        ("ack_flood", {"tcp": 50_000, "ack": 45_000}),
        ("rst_flood", {"tcp": 50_000, "rst": 45_000}),
        ("tcp_flood", {"tcp": 50_000, "syn": 10_000, "ack": 10_000}),
        ("icmp_flood", {"icmp": 20_000}),
        ("fragment_flood", {"udp": 50_000, "fragment": 45_000}),
        ("dns_amplification", {"udp": 40_000, "udp_sport": {53: 36_000}, "size": 1200}),
        ("ntp_amplification", {"udp": 40_000, "udp_sport": {123: 39_000}, "size": 468}),
        ("memcached_amplification", {"udp": 40_000, "udp_sport": {11211: 40_000}, "size": 1400}),
        ("ssdp_amplification", {"udp": 40_000, "udp_sport": {1900: 30_000}}),
        ("cldap_amplification", {"udp": 40_000, "udp_sport": {389: 30_000}}),
        ("chargen_amplification", {"udp": 40_000, "udp_sport": {19: 30_000}}),
        ("multi_vector", {"udp": 30_000, "tcp": 30_000, "syn": 29_000}),
        ("unknown", {"other": 50_000}),
    ],
)
def test_every_family_from_counters(family, rates):
    c = classify(window(**rates), {})
    assert c.family == family
    assert c.evidence["vectors"], "evidence names the vectors that chose the family"


def test_the_parametrized_table_covers_every_family():
    assert len(FAMILIES) == 15


def test_amplification_subtype_and_port():
    c = classify(window(udp=40_000, udp_sport={11211: 40_000}, size=1400), {})
    assert c.subtype == "reflection_sport_11211"
    assert c.vectors[0].amp_port == 11211
    assert c.evidence["amp_port_share_of_udp"] == 1.0
    assert c.evidence["mean_packet_size"] == 1400.0


def test_a_fragment_flood_is_not_named_after_the_nodes_own_dns_answers():
    # Later fragments carry no ports; what little UDP is readable is the node's own DNS
    # answers (port 53). Seen in the collateral lab: this was named dns_amplification.
    w = window(udp=25_000, fragment=24_990, udp_sport={53: 8})
    assert classify(w, {}).family == "fragment_flood"


def test_fragmented_dns_amplification_is_still_dns():
    # A 4 kB DNS answer in 3 fragments: only the first carries source port 53.
    c = classify(window(udp=30_000, fragment=30_000, udp_sport={53: 10_000}), {})
    assert c.family == "dns_amplification"


def test_reflection_ports_without_a_family_are_udp_floods():
    c = classify(window(udp=40_000, udp_sport={161: 40_000}), {})
    assert (c.family, c.subtype) == ("udp_flood", "snmp_reflection")


def test_multi_vector_subtype_lists_the_vectors_by_share():
    c = classify(window(udp=40_000, tcp=30_000, syn=29_000, udp_sport={11211: 40_000}), {})
    assert c.family == "multi_vector"
    assert c.subtype == "memcached_amplification+syn_flood"


def test_excess_over_baseline_not_raw_shares():
    # Normal traffic: 10k pps TCP (ACKs). Attack: +12k pps UDP. Raw shares would say
    # tcp 45 % / udp 55 % (multi-vector); the excess says a UDP flood.
    base = {"pps": 10_000.0, "tcp_pps": 10_000.0, "ack_pps": 9_000.0}
    w = window(tcp=10_000, ack=9_000, udp=12_000)
    assert classify(w, {}).family == "multi_vector"
    assert classify(w, base).family == "udp_flood"


def test_samples_refine_the_subtype():
    spoofed = [syn(f"198.51.{i // 250}.{i % 250 + 1}", dport=443) for i in range(200)]
    c = classify(window(tcp=60_000, syn=59_000), {}, summarize(spoofed), few_sources=16)
    assert c.family == "syn_flood"
    assert c.subtype == "ipv4_dst_port_443_many_sources"
    assert c.evidence["top_dst_ports"][0] == {"port": 443, "share": 1.0}
    few = [udp("192.0.2.1", 4000, 1000 + i) for i in range(100)]
    c2 = classify(window(udp=60_000), {}, summarize(few))
    assert c2.subtype == "ipv4_random_dst_ports"


def test_ipv6_and_icmp_subtypes():
    c = classify(window(udp=50_000, ipv6_share=1.0), {})
    assert (c.family, c.subtype) == ("udp_flood", "ipv6")
    pk = [icmp6("2001:db8::1")] * 30
    c6 = classify(window(icmp=20_000, ipv6_share=1.0), {}, summarize(pk))
    assert (c6.family, c6.subtype) == ("icmp_flood", "ipv6_echo_request")
    c4 = classify(window(icmp=20_000), {}, summarize([icmp("192.0.2.9")] * 30))
    assert c4.subtype == "ipv4_echo_request"
