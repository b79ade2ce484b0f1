"""Operational endpoints of the control plane itself: health check and Prometheus metrics."""
