"""Upstream mitigation over BGP: FlowSpec (RFC 8955) rules and RTBH routes announced by an
ExaBGP speaker that ftcontrol starts, drives through ExaBGP's API process and supervises.

config        the [bgp] TOML file, decoded strictly
announcements FlowSpec / RTBH announcements as typed values, and their ExaBGP API commands
builder       announcements from an incident's rule figures; the workspace-prefix check
exabgp_conf   the ExaBGP configuration and environment generated from our config
relay         the API helper program ExaBGP runs: it joins ExaBGP's pipes to our socket
speaker       the supervisor: ExaBGP child process, restarts with back-off, peer state
engine        what is in force: authorization, cap, TTL expiry, re-announce after restart
"""
