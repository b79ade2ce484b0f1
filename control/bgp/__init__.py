"""Upstream mitigation over BGP: FlowSpec (RFC 8955) rules and RTBH routes announced by an
ExaBGP speaker that ftcontrol starts, drives through ExaBGP's API process and supervises.

config        the [bgp] TOML file, decoded strictly
announcements FlowSpec / RTBH announcements as typed values, and their ExaBGP API commands
builder       announcements from an incident's rule figures; the workspace-prefix check
exabgp_conf   the ExaBGP configuration and environment generated from our config
relay         the API helper program ExaBGP runs: it joins ExaBGP's pipes to our socket
speaker       the supervisor: ExaBGP child process, restarts with back-off, peer state
engine        what is in force: authorization, cap, TTL expiry, re-announce after restart
ledger        where the engine records each change (interface + in-memory)

In the product (wired by control.app when `ftcontrol serve --bgp-config PATH`):
store         the engine's ledger in SQLite, and the REST reads (workspace-scoped)
prefixes      what each workspace may have announced (`ftcontrol workspace prefixes`)
service       Upstream: escalate an incident, withdraw, list; refusals on the incident
auto          the node's mitigation policy applied to agent metrics; hold-down withdrawal
schemas       REST shapes; errors: refusals as HTTP answers; routes: REST API v1
lifespan      engine + services on app.state.upstream (without BGP: answers 409)
"""
