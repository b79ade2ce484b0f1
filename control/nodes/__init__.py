"""Nodes: CRUD, registration (POST /api/deploy), status overview, and the node-scoped REST
views of its agent (operator rules, agent state, overrides, traffic history)."""
