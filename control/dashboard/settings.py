"""Dashboard settings: session lifetimes and the cookie's Secure flag."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_IDLE_S = 30 * 60.0  # a session unused this long is over
DEFAULT_ABSOLUTE_S = 12 * 3600.0  # and no session outlives this, used or not
# last_seen is written at most this often per session: a page's requests each second
# (its live stream aside) would otherwise each cost a database write.
TOUCH_EVERY_S = 60.0


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    idle_s: float = DEFAULT_IDLE_S
    absolute_s: float = DEFAULT_ABSOLUTE_S
    # False only for plain-HTTP labs (`ftcontrol serve --insecure-cookies`).
    secure_cookies: bool = True

    def __post_init__(self) -> None:
        if not (self.idle_s > 0 and self.absolute_s > 0):
            raise ValueError("session idle and absolute lifetimes must be > 0")
