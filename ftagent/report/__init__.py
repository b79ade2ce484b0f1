"""Reporting to the control plane: wire schema, HTTP client, circuit breaker, disk spool
and the background reporter that ties them together (detection never waits on it)."""
