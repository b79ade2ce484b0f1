"""Incidents: the write path (agents and operators), reads, the change-event bus,
and the incident representation (summary, geo origin)."""
