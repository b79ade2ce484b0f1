"""REST API v1 analytics summary over 7d, 30d, 90d or 365d."""

from __future__ import annotations

from litestar import get
from litestar.params import FromQuery

from control.analytics import service as analytics
from control.analytics.service import AnalyticsRange, AnalyticsSummary
from control.core.deps import CallerDep, Db


class AnalyticsResponse(AnalyticsSummary, kw_only=True):
    ok: bool


@get("/analytics/summary", tags=["analytics"], summary="Incident analytics for a time range")
async def analytics_summary(
    caller: CallerDep,
    db: Db,
    range: FromQuery[
        AnalyticsRange
    ] = "30d",  # the reference names it "range" (shadows the builtin here)
) -> AnalyticsResponse:
    result = await analytics.summary(db, caller.workspace_id, range)
    return AnalyticsResponse(ok=True, **{f: getattr(result, f) for f in result.__struct_fields__})
