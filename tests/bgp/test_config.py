"""The BGP config file: decoded strictly, every error names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from control.bgp.config import BgpConfigError, decode_bgp_config, load_bgp_config

GOOD = """
router_id = "192.0.2.10"
local_as = 64513
rtbh_next_hop = "192.0.2.99"

[listen]
address = "192.0.2.10"

[[peers]]
address = "192.0.2.1"
peer_as = 64512
families = ["ipv4_flowspec", "ipv6_flowspec"]
"""


def test_good_file_and_defaults() -> None:
    cfg = decode_bgp_config(GOOD)
    assert cfg.router_id == "192.0.2.10"
    assert cfg.local_as == 64513
    assert cfg.listen.port == 179
    assert cfg.peers[0].families == ("ipv4_flowspec", "ipv6_flowspec")
    assert cfg.rtbh_community == "65535:666"
    assert cfg.community == (65535, 666)
    assert cfg.rtbh_next_hop == "192.0.2.99"
    assert cfg.max_announcements == 200
    assert cfg.default_ttl_s == 300


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (GOOD + "bogus = 1\n", "bogus"),
        (GOOD.replace("peer_as = 64512", "peer_as = 64512\ncolour = 1"), "colour"),
        (GOOD.replace('"192.0.2.1"', '"192.0.2.x"'), "peers.address"),
        (GOOD.replace('router_id = "192.0.2.10"', 'router_id = "2001:db8::1"'), "router_id"),
        (GOOD.replace("local_as = 64513", "local_as = 0"), "local_as"),
        (GOOD.replace('"ipv4_flowspec",', '"ipv4 flow",'), "families"),
        (GOOD + 'rtbh_community = "65535:70000"\n', "rtbh_community"),
        (GOOD + 'rtbh_community = "blackhole"\n', "rtbh_community"),
        (GOOD.replace('"192.0.2.99"', '"2001:db8::1"'), "rtbh_next_hop"),
        (GOOD + "max_announcements = 0\n", "max_announcements"),
        (GOOD.replace("local_as = 64513\n", ""), "local_as"),
        ("router_id = [", "TOML"),
    ],
)
def test_bad_file_names_the_key(change: str, named: str) -> None:
    with pytest.raises(BgpConfigError) as err:
        decode_bgp_config(change, "bgp.toml")
    assert named in str(err.value)
    assert "bgp.toml" in str(err.value)


def test_two_peers_with_one_address_refused() -> None:
    twice = GOOD + '\n[[peers]]\naddress = "192.0.2.1"\npeer_as = 64999\n'
    with pytest.raises(BgpConfigError, match=r"peers\.address: 192\.0\.2\.1 is listed twice"):
        decode_bgp_config(twice)


def test_load_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bgp.toml"
    path.write_text(GOOD)
    assert load_bgp_config(path).local_as == 64513
    with pytest.raises(BgpConfigError, match=r"missing\.toml: cannot read"):
        load_bgp_config(tmp_path / "missing.toml")


def test_ipv6_peer_needs_an_ipv6_local_address() -> None:
    v6_peer = GOOD + '\n[[peers]]\naddress = "2001:db8::1"\npeer_as = 64512\n'
    with pytest.raises(BgpConfigError, match=r"peers\.local_address: peer 2001:db8::1 needs"):
        decode_bgp_config(v6_peer)
    cfg = decode_bgp_config(v6_peer + 'local_address = "2001:db8::10"\n')
    assert [cfg.local_address(p) for p in cfg.peers] == ["192.0.2.10", "2001:db8::10"]
