"""Severity of an incident from its peak: the shared definition (`ftcontract.severity`),
which the control plane's fleet detection uses too."""

from ftcontract.severity import severity as severity
