"""The Agent API area: what ftagent on each node talks to (node API key + X-Node-UUID).

Routes (`routes.py`), metrics ingestion with retention and roll-ups, incident ingestion
(idempotent), operator rule commands and overrides served to the agent, pcaps, and the
per-node Prometheus gauges. Node-key auth is in control.core.auth; the REST views of a
node's agent (rules, agent state, overrides, traffic) are in control.nodes.
"""
