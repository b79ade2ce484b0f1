"""Why an escalation announced nothing, as HTTP answers (through control.core.errors)."""

from __future__ import annotations

from typing import ClassVar

from control.bgp.builder import Refusal, RefusalKind
from control.core.errors import DomainError

NOT_CONFIGURED = "BGP is not configured (start ftcontrol serve with --bgp-config PATH)"


class BgpNotConfigured(DomainError):
    """ftcontrol runs without --bgp-config: there is no speaker."""

    status_code = 409

    def __init__(self) -> None:
        super().__init__(NOT_CONFIGURED)


class EscalationRefused(DomainError):
    """Nothing was announced; the refusal is recorded on the incident as well."""

    # the address is outside the workspace's declared prefixes: not the caller's to filter
    STATUS: ClassVar[dict[RefusalKind, int]] = {
        "not_allowed": 403,
        "not_buildable": 409,
        "cap": 409,
        "not_configured": 409,
        "rejected": 502,  # ExaBGP answered "error": our side's fault, not the caller's
    }

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.kind = refusal.kind
        self.status_code = self.STATUS[refusal.kind]  # type: ignore[misc]
