"""SMS through Twilio's Programmable Messaging: POST /2010-04-01/Accounts/{sid}/Messages.json.

Form-encoded To/From/Body with HTTP basic auth (Account SID : Auth Token); 201 on success.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from control.incidents.summary import format_duration, format_rate
from control.notify.config import SmsConfig
from control.notify.formats.request import OutboundRequest, join_url, truncate
from control.notify.message import Notice

BODY_LIMIT = 1600  # Twilio's maximum Body length


def sms_text(notice: Notice) -> str:
    sources = "" if notice.is_fleet else f", {notice.source_count} sources"
    head = (
        f"[fasttrace] {notice.headline}: {notice.family} on {notice.subject}, "
        f"{notice.severity}, peak {format_rate(notice.peak_pps, 'pps')} / "
        f"{format_rate(notice.peak_bps, 'bps')}{sources}, "
        f"{format_duration(notice.duration_sec)}. Incident {notice.incident_uuid}."
    )
    return truncate(f"{head} {notice.summary}".strip(), BODY_LIMIT)


def build(cfg: SmsConfig, notice: Notice) -> OutboundRequest:
    path = f"/2010-04-01/Accounts/{quote(cfg.account_sid, safe='')}/Messages.json"
    form = urlencode({"To": cfg.to, "From": cfg.from_number, "Body": sms_text(notice)})
    return OutboundRequest(
        method="POST",
        url=join_url(cfg.api_url, path),
        body=form.encode(),
        content_type="application/x-www-form-urlencoded",
        basic_auth=(cfg.account_sid, cfg.auth_token),
    )
