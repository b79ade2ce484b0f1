"""Plans and their node limits (the workspace's `node_limit` is copied from here at create)."""

from __future__ import annotations

PLAN_NODE_LIMITS: dict[str, int] = {
    "free": 5,
    "pro": 100,
    "business": 1_000,
    "enterprise": 100_000,
}
DEFAULT_PLAN = "free"
SUBSCRIPTION_STATUSES: tuple[str, ...] = ("active", "past_due", "canceled")
