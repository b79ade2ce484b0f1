"""Argument handling of `ftagent rules|block|unblock` (the kernel side is in tests/bpf)."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

import pytest

from ftagent.bpf.rule_spec import RuleError, validate_spec
from ftagent.commands.rules import (
    UsageError,
    cmd_block,
    format_rules,
    parse_target,
    protection_from_config,
    resolve_interface,
)
from ftagent.datapath import Rule, RuleSpec
from ftagent.orders.fleet_state import FleetRulesFile, owned_entry


def ns(**kw: object) -> argparse.Namespace:
    return argparse.Namespace(**kw)


def test_targets_become_src_or_prefix_rules() -> None:
    assert parse_target("192.0.2.1") == RuleSpec("src", ipaddress.ip_network("192.0.2.1/32"))
    assert parse_target("2001:db8::1/128").kind == "src"
    assert parse_target("192.0.2.0/24").kind == "prefix"
    with pytest.raises(UsageError, match="host bits"):
        parse_target("192.0.2.1/24")
    with pytest.raises(UsageError, match="not an address"):
        parse_target("example.com")


def test_interface_from_flag_or_config(tmp_path: Path) -> None:
    assert resolve_interface(ns(interface="eth9", config="/nonexistent")) == "eth9"
    cfg = tmp_path / "a.toml"
    cfg.write_text('[agent]\ninterface = "ens3"\n[unrelated]\nx = 1\n')
    assert resolve_interface(ns(interface=None, config=str(cfg))) == "ens3"
    cfg.write_text("[agent]\n")
    with pytest.raises(UsageError, match=r"\[agent\].interface"):
        resolve_interface(ns(interface=None, config=str(cfg)))
    cfg.write_text("[agent\n")
    with pytest.raises(UsageError, match="cannot read"):
        resolve_interface(ns(interface=None, config=str(cfg)))
    with pytest.raises(UsageError, match="does not exist"):
        resolve_interface(ns(interface=None, config=str(tmp_path / "missing.toml")))


def test_format_rules_table() -> None:
    now = 10**12
    rules = [
        Rule(RuleSpec("src", ipaddress.ip_network("192.0.2.1/32")), now + 30 * 10**9, 5, 500),
        Rule(RuleSpec("signature", proto=17, src_port=11211, rate_pps=100), now - 1, 0, 0),
    ]
    text = format_rules(rules, now)
    lines = text.splitlines()
    assert lines[0].split()[:2] == ["RULE", "ACTION"]
    assert "src 192.0.2.1/32" in lines[2] and "in 30s" in lines[2] and "500" in lines[2]
    assert "signature proto=17 sport=11211" in lines[1] and "rate 100 pps" in lines[1]
    assert "expired" in lines[1]
    assert format_rules([], now) == "no rules\n"


def test_format_rules_shows_what_a_rule_spared() -> None:
    now = 10**12
    spec = RuleSpec("signature", proto=17, src_port=53, rate_pps=50, spare="connected")
    lines = format_rules([Rule(spec, now + 10**10, 7, 700, 123, 9000)], now).splitlines()
    assert lines[0].split()[-5:] == ["SPARED", "PKTS", "SPARED", "BYTES", "OWNER"]
    assert "signature proto=17 sport=53 spare=connected" in lines[1]
    assert "rate 50 pps" in lines[1] and lines[1].split()[-3:] == ["123", "9000", "-"]


def test_format_rules_marks_the_rules_fleet_orders_keep() -> None:
    now = 10**12
    dns = RuleSpec("signature", proto=17, src_port=53, spare="connected")
    syn = RuleSpec("signature", proto=6, tcp_flags=2, tcp_flags_mask=0x12, spare="sockets")
    uuid = "5f0c1e2d-3b4a-4c5d-8e6f-7a8b9c0d1e2f"
    fleet = FleetRulesFile(rules=[owned_entry(dns, [uuid])])
    rules = [Rule(dns, now + 10**10), Rule(syn, now + 10**10)]
    lines = format_rules(rules, now, fleet).splitlines()
    (dns_line,) = [line for line in lines if "sport=53" in line]
    (syn_line,) = [line for line in lines if "proto=6" in line]
    assert dns_line.split()[-2:] == ["fleet", uuid]
    assert syn_line.split()[-1] == "-"


@pytest.mark.parametrize(
    "spec",
    [
        RuleSpec("src", ipaddress.ip_network("10.0.0.0/8")),
        RuleSpec("signature", proto=99),
        RuleSpec("signature", proto=58, dst_port=1),
        RuleSpec("signature", proto=6, tcp_flags=2),
        RuleSpec("prefix", ipaddress.ip_network("10.0.0.0/8"), rate_pps=10**9),
    ],
)
def test_validate_spec_rejects(spec: RuleSpec) -> None:
    with pytest.raises(RuleError):
        validate_spec(spec)


def test_block_refuses_protected_targets_like_every_other_path(tmp_path: Path) -> None:
    cfg = tmp_path / "a.toml"
    cfg.write_text(
        '[agent]\ninterface = "ens3"\n'
        '[control]\nserver = "https://198.51.100.9:8080"\n'
        '[mitigation]\nallowlist = ["203.0.113.0/24", "not-a-net"]\n'
        'management_prefixes = ["100.64.7.0/24"]\n'
    )
    protection = protection_from_config(str(cfg))
    assert protection.reason_for(ipaddress.ip_network("203.0.113.7/32")) == "allow-list"
    assert protection.reason_for(ipaddress.ip_network("100.64.7.0/25")) == "management prefix"
    assert protection.reason_for(ipaddress.ip_network("198.51.100.9/32")) == (
        "control-plane address"
    )
    assert protection.reason_for(ipaddress.ip_network("127.0.0.1/32")) == "node's own address"
    assert protection.reason_for(ipaddress.ip_network("198.51.100.10/32")) is None
    # refused before any map is touched, exit 2 naming the reason; --force goes on
    # (to the pinned maps, which do not exist for this interface: exit 1)
    args = ns(interface="ftnone0", config=str(cfg), address="203.0.113.7", ttl=60.0, force=False)
    assert cmd_block(args) == 2
    args.force = True
    assert cmd_block(args) == 1
    # an unreadable config protects the node's own addresses still
    assert (
        protection_from_config(str(tmp_path / "missing.toml")).reason_for(
            ipaddress.ip_network("127.0.0.1/32")
        )
        == "node's own address"
    )
