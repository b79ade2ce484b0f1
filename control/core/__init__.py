"""Shared infrastructure of the control plane: store and migrations, auth, errors and their
HTTP status mapping, clock, limits, validation, OpenAPI error documentation."""
