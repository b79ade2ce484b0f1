"""Email: a plain-text message with an HTML alternative, for SMTP delivery."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from html import escape

from control.notify.config import EmailConfig
from control.notify.message import Notice


def build(cfg: EmailConfig, notice: Notice, delivery_key: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = notice.title
    msg["From"] = cfg.from_addr
    msg["To"] = ", ".join(cfg.to)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=cfg.from_addr.rsplit("@", 1)[-1])
    # Stable across retries: lets a mail filter or a person spot a repeat.
    msg["X-Fasttrace-Delivery"] = delivery_key
    msg["X-Fasttrace-Incident"] = notice.incident_uuid
    msg.set_content(notice.text())
    rows = "".join(
        f"<tr><th align='left'>{escape(n)}</th><td>{escape(v)}</td></tr>" for n, v in notice.facts()
    )
    summary = f"<p>{escape(notice.summary)}</p>" if notice.summary else ""
    msg.add_alternative(
        f"<html><body><h2>{escape(notice.title)}</h2><table>{rows}</table>{summary}</body></html>",
        subtype="html",
    )
    return msg
