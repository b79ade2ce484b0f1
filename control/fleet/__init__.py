"""Fleet detection: attacks spread over a group of nodes (issue 18, docs/fleet.md)."""
