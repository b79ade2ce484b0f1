"""Telegram: Bot API sendMessage with HTML formatting."""

from __future__ import annotations

from html import escape

from control.notify.config import TelegramConfig
from control.notify.formats.request import OutboundRequest, join_url, json_request, truncate
from control.notify.message import Notice

TEXT_LIMIT = 4096  # sendMessage's limit on text length


def message_html(notice: Notice) -> str:
    head = [f"<b>{escape(notice.title)}</b>", ""]
    head += [f"<b>{escape(name)}:</b> {escape(value)}" for name, value in notice.facts()]
    text = "\n".join(head)
    if notice.summary:
        # Only the (escaped, tag-free) summary is cut, so the HTML stays well formed.
        room = TEXT_LIMIT - len(text) - 2
        text += "\n\n" + truncate(escape(notice.summary), room)
    return text


def build(cfg: TelegramConfig, notice: Notice) -> OutboundRequest:
    payload = {
        "chat_id": str(cfg.chat_id),
        "text": message_html(notice),
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    return json_request(join_url(cfg.api_url, f"/bot{cfg.bot_token}/sendMessage"), payload)
