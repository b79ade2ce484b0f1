"""Loopback HTTP receivers standing in for each notification service.

Each receiver is a real HTTP server on 127.0.0.1 (a thread running ThreadingHTTPServer).
Every request is checked against that service's documented request format (method, path,
headers, auth, body fields and limits) and the problems found are recorded with it; a
test asserts there are none. A receiver can be told to answer the next requests with a
429 + Retry-After, a 500, or to hang without answering.

Over 400 lines on purpose: the server, each service's documented request format and its
factory read side by side, and the unit tests use the same validators (`rx.check_*`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    at: float
    problems: list[str] = field(default_factory=list)
    answered: int | None = None  # status we answered, None if we hung

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, list[str]]:
        return parse_qs(self.body.decode())


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False
    delay_sec: float = 0.0  # answer, but only after this long


Validator = Callable[[Received, dict[str, Any]], None]


class Receiver:
    def __init__(self, service: str, validator: Validator, ok: Reply, **expect: Any) -> None:
        self.service = service
        self.validator = validator
        self.ok_reply = ok
        self.expect = expect
        self.requests: list[Received] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripting -------------------------------------------------------------------

    def then(self, *replies: Reply) -> Receiver:
        """Answer the next requests with these replies, then with the service's OK."""
        with self._lock:
            self._script.extend(replies)
        return self

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    # -- reading what arrived -----------------------------------------------------------

    def problems(self) -> list[str]:
        return [f"{r.method} {r.path}: {p}" for r in self.requests for p in r.problems]

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + within
        while len(self.requests) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.service}: {len(self.requests)} requests after {within}s, wanted {count}"
                )
            await asyncio.sleep(0.02)
        return list(self.requests)

    # -- the server side ---------------------------------------------------------------

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else self.ok_reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                req = Received(
                    method=self.command,
                    path=parts.path,
                    query=parse_qs(parts.query),
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    at=time.time(),
                )
                try:
                    receiver.validator(req, receiver.expect)
                except Exception as exc:  # a malformed body is a problem, not a crash
                    req.problems.append(f"unreadable request: {exc!r}")
                reply = receiver._next_reply()
                with receiver._lock:
                    receiver.requests.append(req)
                if reply.hang:
                    receiver._release.wait(30)
                    self.close_connection = True
                    return
                if reply.delay_sec:
                    receiver._release.wait(reply.delay_sec)
                req.answered = reply.status
                self.send_response(reply.status)
                for name, value in reply.headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = _handle
            do_PATCH = _handle
            do_PUT = _handle
            do_GET = _handle

        return Handler


# ---- replies ---------------------------------------------------------------------------


def json_reply(status: int, payload: Any, *headers: tuple[str, str]) -> Reply:
    return Reply(
        status, json.dumps(payload).encode(), (("Content-Type", "application/json"), *headers)
    )


def too_many(retry_after: str) -> Reply:
    return json_reply(429, {"error": "rate limited"}, ("Retry-After", retry_after))


SERVER_ERROR = json_reply(500, {"error": "internal"})
HANG = Reply(0, hang=True)


# ---- checks shared by validators ----------------------------------------------------------


def _need(req: Received, cond: bool, problem: str) -> None:
    if not cond:
        req.problems.append(problem)


def _json_body(req: Received) -> Any:
    _need(
        req,
        req.headers.get("content-type", "").startswith("application/json"),
        "Content-Type is not application/json",
    )
    return req.json()


def _max_len(req: Received, name: str, value: Any, limit: int) -> None:
    _need(req, isinstance(value, str) and 0 < len(value) <= limit, f"{name} not 1..{limit} chars")


_ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")


# ---- one validator per service (documented request formats) -----------------------------


def check_discord(req: Received, expect: dict[str, Any]) -> None:
    # Execute Webhook: POST /api/webhooks/{webhook.id}/{webhook.token}, JSON with
    # content or embeds (max 10); embed title 256, description 4096, 25 fields,
    # field name 256 / value 1024, all embeds together 6000 characters; color an integer.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == expect["path"], f"path {req.path} is not the webhook path")
    body = _json_body(req)
    embeds = body.get("embeds")
    _need(req, isinstance(embeds, list) and 1 <= len(embeds) <= 10, "embeds must be 1..10")
    total = 0
    for embed in embeds or []:
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += len(embed.get("footer", {}).get("text", ""))
        total += sum(len(f.get("name", "")) + len(f.get("value", "")) for f in embed["fields"])
        _max_len(req, "embed.title", embed.get("title"), 256)
        _max_len(req, "embed.description", embed.get("description"), 4096)
        _need(req, isinstance(embed.get("color"), int), "embed.color is not an integer")
        fields = embed.get("fields", [])
        _need(req, len(fields) <= 25, "more than 25 fields")
        for f in fields:
            _max_len(req, "field.name", f.get("name"), 256)
            _max_len(req, "field.value", f.get("value"), 1024)
    _need(req, total <= 6000, f"embeds total {total} characters > 6000")


def check_slack(req: Received, expect: dict[str, Any]) -> None:
    # Incoming webhook: POST JSON {text, blocks}; header text plain_text <= 150;
    # section fields <= 10, each text <= 2000.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == expect["path"], "path is not the webhook path")
    body = _json_body(req)
    _need(req, isinstance(body.get("text"), str) and body["text"], "no fallback text")
    blocks = body.get("blocks")
    _need(req, isinstance(blocks, list) and 0 < len(blocks) <= 50, "blocks must be 1..50")
    for block in blocks or []:
        kind = block.get("type")
        _need(req, kind in ("header", "section", "context", "divider"), f"block type {kind}")
        if kind == "header":
            _need(req, block["text"]["type"] == "plain_text", "header text is not plain_text")
            _max_len(req, "header.text", block["text"]["text"], 150)
        if kind == "section":
            _need(req, "text" in block or "fields" in block, "section without text or fields")
            fields = block.get("fields", [])
            _need(req, len(fields) <= 10, "section has more than 10 fields")
            for f in fields:
                _need(req, f.get("type") in ("mrkdwn", "plain_text"), "field type")
                _max_len(req, "field.text", f.get("text"), 2000)


def check_teams(req: Received, expect: dict[str, Any]) -> None:
    # Webhook message carrying an Adaptive Card attachment.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == expect["path"], "path is not the webhook path")
    body = _json_body(req)
    _need(req, body.get("type") == "message", "type is not message")
    attachments = body.get("attachments") or []
    _need(req, len(attachments) == 1, "expected one attachment")
    for att in attachments:
        _need(
            req,
            att.get("contentType") == "application/vnd.microsoft.card.adaptive",
            "attachment is not an Adaptive Card",
        )
        card = att.get("content") or {}
        _need(req, card.get("type") == "AdaptiveCard", "content.type is not AdaptiveCard")
        _need(req, isinstance(card.get("version"), str), "card has no version")
        _need(req, isinstance(card.get("body"), list) and card["body"], "card has no body")
        for element in card.get("body", []):
            _need(req, element.get("type") in ("TextBlock", "FactSet"), "unknown element")


def check_telegram(req: Received, expect: dict[str, Any]) -> None:
    # Bot API: POST /bot<token>/sendMessage, JSON chat_id + text (1-4096), parse_mode.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == f"/bot{expect['bot_token']}/sendMessage", "path/token mismatch")
    body = _json_body(req)
    _need(req, str(body.get("chat_id")) == str(expect["chat_id"]), "chat_id mismatch")
    _max_len(req, "text", body.get("text"), 4096)
    _need(req, body.get("parse_mode") in (None, "HTML", "MarkdownV2"), "bad parse_mode")


def check_twilio(req: Received, expect: dict[str, Any]) -> None:
    # Messages API: POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form-encoded
    # To, From, Body (<= 1600), HTTP basic auth AccountSid:AuthToken.
    sid = expect["account_sid"]
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == f"/2010-04-01/Accounts/{sid}/Messages.json", "path mismatch")
    _need(
        req,
        req.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"),
        "body is not form-encoded",
    )
    want = "Basic " + base64.b64encode(f"{sid}:{expect['auth_token']}".encode()).decode()
    _need(req, req.headers.get("authorization") == want, "basic auth mismatch")
    form = req.form()
    _need(req, form.get("To") == [expect["to"]], "To mismatch")
    _need(req, form.get("From") == [expect["from"]], "From mismatch")
    _max_len(req, "Body", (form.get("Body") or [""])[0], 1600)


def check_pagerduty(req: Received, expect: dict[str, Any]) -> None:
    # Events API v2: POST /v2/enqueue JSON routing_key, event_action, dedup_key;
    # trigger needs payload.summary (<= 1024), source, severity in the four levels.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == "/v2/enqueue", "path is not /v2/enqueue")
    body = _json_body(req)
    _need(req, body.get("routing_key") == expect["routing_key"], "routing_key mismatch")
    action = body.get("event_action")
    _need(req, action in ("trigger", "acknowledge", "resolve"), f"event_action {action}")
    _max_len(req, "dedup_key", body.get("dedup_key"), 255)
    if action == "trigger":
        payload = body.get("payload") or {}
        _max_len(req, "payload.summary", payload.get("summary"), 1024)
        _need(req, bool(payload.get("source")), "payload.source missing")
        _need(
            req,
            payload.get("severity") in ("critical", "error", "warning", "info"),
            "payload.severity not one of critical/error/warning/info",
        )
        if "timestamp" in payload:
            _need(req, bool(_ISO.match(payload["timestamp"])), "timestamp not ISO 8601")


def check_opsgenie(req: Received, expect: dict[str, Any]) -> None:
    # Alert API: Authorization: GenieKey <key>; create POST /v2/alerts (message <= 130,
    # alias <= 512, description <= 15000, priority P1-P5); close POST
    # /v2/alerts/{alias}/close?identifierType=alias.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.headers.get("authorization") == f"GenieKey {expect['api_key']}", "auth")
    body = _json_body(req)
    if req.path == "/v2/alerts":
        _max_len(req, "message", body.get("message"), 130)
        _max_len(req, "alias", body.get("alias"), 512)
        _max_len(req, "description", body.get("description"), 15000)
        _need(req, body.get("priority") in ("P1", "P2", "P3", "P4", "P5"), "priority")
        details = body.get("details", {})
        _need(req, all(isinstance(v, str) for v in details.values()), "details not strings")
        _need(req, len(body.get("tags", [])) <= 20, "more than 20 tags")
    elif re.fullmatch(r"/v2/alerts/[^/]+/close", req.path):
        _need(req, req.query.get("identifierType") == ["alias"], "identifierType != alias")
    else:
        req.problems.append(f"unexpected path {req.path}")


def check_webhook(req: Received, expect: dict[str, Any]) -> None:
    # Ours: JSON body; <header>: sha256=<hex HMAC-SHA256(secret, raw body)>.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == expect["path"], "path mismatch")
    body = _json_body(req)
    header = req.headers.get(expect["signature_header"].lower(), "")
    digest = hmac.new(expect["secret"].encode(), req.body, hashlib.sha256).hexdigest()
    _need(req, hmac.compare_digest(header, f"sha256={digest}"), "HMAC signature mismatch")
    _need(
        req,
        body.get("event")
        in (
            "attack_start",
            "attack_update",
            "attack_end",
            "test",
            "upstream_announced",
            "upstream_withdrawn",
        ),
        "unknown event",
    )
    _need(req, req.headers.get("x-webhook-delivery") == body.get("delivery"), "delivery id")


def check_grafana(req: Received, expect: dict[str, Any]) -> None:
    # Annotations API: POST /api/annotations, Bearer token, time/timeEnd epoch ms, tags, text.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == "/api/annotations", "path is not /api/annotations")
    _need(req, req.headers.get("authorization") == f"Bearer {expect['token']}", "bearer token")
    body = _json_body(req)
    _need(req, isinstance(body.get("time"), int) and body["time"] > 1e12, "time not epoch ms")
    if "timeEnd" in body:
        _need(
            req,
            isinstance(body["timeEnd"], int) and body["timeEnd"] >= body["time"],
            "timeEnd before time",
        )
    _need(req, all(isinstance(t, str) for t in body.get("tags", [])), "tags not strings")
    _need(req, isinstance(body.get("text"), str) and body["text"], "no text")


def check_datadog(req: Received, expect: dict[str, Any]) -> None:
    # Events API v1: POST /api/v1/events, DD-API-KEY header, title + text (<= 4000),
    # alert_type in error/warning/info/success/..., priority normal/low.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == "/api/v1/events", "path is not /api/v1/events")
    _need(req, req.headers.get("dd-api-key") == expect["api_key"], "DD-API-KEY mismatch")
    body = _json_body(req)
    _max_len(req, "title", body.get("title"), 100)
    _max_len(req, "text", body.get("text"), 4000)
    _need(
        req,
        body.get("alert_type")
        in ("error", "warning", "info", "success", "user_update", "recommendation", "snapshot"),
        "alert_type",
    )
    _need(req, body.get("priority") in (None, "normal", "low"), "priority")
    _need(req, len(body.get("aggregation_key", "")) <= 100, "aggregation_key > 100")


def check_alertmanager(req: Received, expect: dict[str, Any]) -> None:
    # Alertmanager API v2: POST /api/v2/alerts, JSON list of postable alerts:
    # labels (string map, alertname), annotations, startsAt/endsAt RFC 3339.
    _need(req, req.method == "POST", "method is not POST")
    _need(req, req.path == "/api/v2/alerts", "path is not /api/v2/alerts")
    alerts = _json_body(req)
    _need(req, isinstance(alerts, list) and len(alerts) > 0, "body is not a non-empty list")
    for alert in alerts or []:
        labels = alert.get("labels") or {}
        _need(req, bool(labels.get("alertname")), "no alertname label")
        _need(req, all(isinstance(v, str) for v in labels.values()), "labels not strings")
        for name in labels:
            _need(req, bool(re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name)), f"label {name}")
        annotations = alert.get("annotations", {})
        _need(req, all(isinstance(v, str) for v in annotations.values()), "annotations")
        for key in ("startsAt", "endsAt"):
            if key in alert:
                _need(req, bool(_ISO.match(alert[key])), f"{key} not RFC 3339")


# ---- factories: one receiver per service with its documented success answer -------------


def discord(webhook_path: str = "/api/webhooks/1234567890/tok-en_abc") -> Receiver:
    return Receiver("discord", check_discord, Reply(204), path=webhook_path)


def slack(webhook_path: str = "/services/T000/B000/XXXXXXXX") -> Receiver:
    return Receiver("slack", check_slack, Reply(200, b"ok"), path=webhook_path)


def teams(webhook_path: str = "/workflows/abc/triggers/manual/paths/invoke") -> Receiver:
    return Receiver("teams", check_teams, Reply(202), path=webhook_path)


def telegram(
    bot_token: str = "123456:ABC-DEF1234ghIkl",  # noqa: S107
    chat_id: str = "-100200300",
) -> Receiver:
    ok = json_reply(200, {"ok": True, "result": {"message_id": 1}})
    return Receiver("telegram", check_telegram, ok, bot_token=bot_token, chat_id=chat_id)


def twilio(
    account_sid: str = "AC" + "0123456789abcdef" * 2,
    auth_token: str = "f" * 32,
    from_: str = "+15005550006",
    to: str = "+491701234567",
) -> Receiver:
    ok = json_reply(201, {"sid": "SM" + "0" * 32, "status": "queued"})
    return Receiver(
        "sms",
        check_twilio,
        ok,
        account_sid=account_sid,
        auth_token=auth_token,
        to=to,
        **{"from": from_},
    )


def pagerduty(routing_key: str = "R0UT1NGKEY0123456789abcdefABCDEF") -> Receiver:
    ok = json_reply(202, {"status": "success", "message": "Event processed", "dedup_key": "x"})
    return Receiver("pagerduty", check_pagerduty, ok, routing_key=routing_key)


def opsgenie(api_key: str = "eb243592-faa2-4ba2-a551q-1afdf565c889") -> Receiver:
    ok = json_reply(202, {"result": "Request will be processed", "took": 0.1, "requestId": "r"})
    return Receiver("opsgenie", check_opsgenie, ok, api_key=api_key)


def webhook(
    secret: str = "s3cret-s3cret-s3cret",  # noqa: S107
    path: str = "/hooks/ddos",
    signature_header: str = "X-Signature-256",
) -> Receiver:
    return Receiver(
        "webhook",
        check_webhook,
        Reply(200),
        secret=secret,
        path=path,
        signature_header=signature_header,
    )


def grafana(
    token: str = "glsa_0123456789abcdef0123456789abcdef_01234567",  # noqa: S107
) -> Receiver:
    ok = json_reply(200, {"message": "Annotation added", "id": 1})
    return Receiver("grafana", check_grafana, ok, token=token)


def datadog(api_key: str = "0123456789abcdef0123456789abcdef") -> Receiver:
    return Receiver("datadog", check_datadog, json_reply(202, {"status": "ok"}), api_key=api_key)


def alertmanager() -> Receiver:
    return Receiver("prometheus", check_alertmanager, Reply(200))
