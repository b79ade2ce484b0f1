"""Incident analytics over a time range."""
