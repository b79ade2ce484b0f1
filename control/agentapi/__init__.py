"""The control plane's side of the Agent API: node-key auth, metrics ingestion with
retention and roll-ups, incident ingestion (idempotent), operator rule commands, pcaps,
and the per-node Prometheus gauges. HTTP routes are in control.api.agent / node_rules."""
