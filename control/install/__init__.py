"""The one-line node install: ftcontrol serves `install.sh` and the agent wheel it was
installed from (`GET /install.sh`, `GET /install/<wheel file>`), so a node needs nothing
but the control plane."""
