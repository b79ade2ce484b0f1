"""Request size limits of the control plane (one place, so the CLI and the app agree)."""

from __future__ import annotations

# Largest request body in general (JSON), answered 413 above it. A full metrics batch
# (3,600 points, the Agent API's per-post maximum) is about 1.5 MB. The pcap upload route
# sets its own, larger cap (control.agentapi.routes.PCAP_REQUEST_CAP).
MAX_BODY_BYTES = 4 * 1024 * 1024
