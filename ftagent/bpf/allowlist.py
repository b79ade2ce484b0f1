"""The allow-list: LPM tries allow_v4/allow_v6, consulted only when a rule would drop."""

from __future__ import annotations

import ipaddress

from ftagent.bpf.rule_spec import RuleError
from ftagent.bpf.rules import recount
from ftagent.bpf.tables import Tables, bytes_into
from ftagent.datapath import IPNetwork

TABLES = ((4, "allow_v4"), (6, "allow_v6"))


def set_allowlist(tables: Tables, networks: list[IPNetwork]) -> None:
    """Replace the allow-list with exactly these networks."""
    for version, name in TABLES:
        table = tables[name]
        wanted: dict[tuple[int, bytes], IPNetwork] = {}
        for net in networks:
            if net.version == version:
                wanted[(net.prefixlen, net.network_address.packed)] = net
        if len(wanted) > table.max_entries:
            raise RuleError(f"allow-list holds at most {table.max_entries} IPv{version} prefixes")
        for key in list(table.keys()):
            if (int(key.prefixlen), bytes(key.addr)) not in wanted:
                del table[key]
        for plen, packed in wanted:
            key = table.Key()
            key.prefixlen = plen
            bytes_into(key.addr, packed)
            table[key] = table.Leaf(1)
        recount(tables, name)


def allowlist(tables: Tables) -> list[IPNetwork]:
    nets: list[IPNetwork] = []
    for _, name in TABLES:
        for key in tables[name]:
            nets.append(ipaddress.ip_network((bytes(key.addr), int(key.prefixlen))))
    return nets
