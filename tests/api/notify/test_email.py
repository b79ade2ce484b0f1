"""Email channel against a real SMTP server (aiosmtpd) on loopback: STARTTLS + AUTH,
implicit TLS, plain relay, a rejected password (not retried), a 4xx reply (retried)."""

from __future__ import annotations

import email
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from control.notify.service import NotificationService
from tests.api.notify.conftest import FAST, Store
from tests.api.notify.test_service_formats import assert_carries_incident

USER, PASSWORD = "alerts", "correct horse battery"


@dataclass
class Mailbox:
    messages: list[tuple[str, list[str], Message, bool]] = field(default_factory=list)
    # Replies to give instead of accepting, consumed in order.
    refusals: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.refusals:
            return self.refusals.pop(0)
        msg = email.message_from_bytes(envelope.content)
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), msg, bool(session.authenticated))
        )
        return "250 Message accepted for delivery"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    # handled=False: aiosmtpd then answers 535 itself.
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server(certificate: tuple[Path, Path]) -> Iterator[Any]:
    started: list[Controller] = []

    def start(mode: str) -> tuple[Mailbox, int]:
        cert, key = certificate
        server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_tls.load_cert_chain(cert, key)
        box = Mailbox()
        port = _free_port()
        kwargs: dict[str, Any] = {"authenticator": _authenticator, "auth_require_tls": True}
        if mode == "starttls":
            kwargs.update(tls_context=server_tls, require_starttls=True)
        elif mode == "tls":
            # The whole connection is TLS; aiosmtpd only tracks STARTTLS for AUTH's sake.
            kwargs.update(ssl_context=server_tls, auth_require_tls=False)
        else:
            kwargs = {}
        controller = Controller(box, hostname="127.0.0.1", port=port, **kwargs)
        controller.start()
        started.append(controller)
        return box, port

    yield start
    for controller in started:
        controller.stop()


def _client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


async def _service(store: Store, certificate: tuple[Path, Path]) -> NotificationService:
    svc = NotificationService(
        store.db, store.events, FAST, smtp_tls_context=_client_tls(certificate)
    )
    store.services.append(svc)
    await svc.start()
    return svc


def _config(port: int, security: str, *, password: str | None = PASSWORD) -> dict[str, Any]:
    config: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": security,
        "from": "ddos@example.net",
        "to": ["noc@example.net", "oncall@example.org"],
    }
    if password is not None:
        config.update(username=USER, password=password)
    return config


def _text(msg: Message) -> str:
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode()
    raise AssertionError("no text/plain part")


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_email_over_tls_with_auth_carries_the_incident(
    security: str, store: Store, smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    box, port = smtp_server(security)
    channel_id = await store.channel("email", _config(port, security))
    await _service(store, certificate)
    incident = await store.open_incident()
    await store.wait_settled(channel_id, 1)

    assert [a["outcome"] for a in await store.attempts(channel_id)] == ["delivered"]
    ((mail_from, rcpt, msg, authenticated),) = box.messages
    assert authenticated
    assert mail_from == "ddos@example.net"
    assert rcpt == ["noc@example.net", "oncall@example.org"]
    assert msg["To"] == "noc@example.net, oncall@example.org"
    assert incident.uuid in msg["X-Fasttrace-Incident"]
    assert "udp_flood on edge-fra-1 (critical)" in msg["Subject"]
    assert_carries_incident(_text(msg), incident, store.node_name)
    assert any(p.get_content_type() == "text/html" for p in msg.walk())


async def test_email_plain_relay_without_auth(
    store: Store, smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    box, port = smtp_server("none")
    channel_id = await store.channel("email", _config(port, "none", password=None))
    await _service(store, certificate)
    incident = await store.open_incident()
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    await store.wait_settled(channel_id, 2)
    subjects = [m[2]["Subject"] for m in box.messages]
    assert subjects[0].startswith("DDoS attack detected")
    assert subjects[1].startswith("DDoS attack ended")


async def test_email_wrong_password_fails_without_retry(
    store: Store, smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    box, port = smtp_server("starttls")
    channel_id = await store.channel("email", _config(port, "starttls", password="wrong"))
    await _service(store, certificate)
    await store.open_incident()
    await store.wait_settled(channel_id, 1)
    attempts = await store.attempts(channel_id)
    assert [a["outcome"] for a in attempts] == ["failed"]
    assert attempts[0]["error"].startswith("SMTP 535")
    assert box.messages == []


async def test_email_transient_reply_is_retried(
    store: Store, smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    box, port = smtp_server("none")
    box.refusals.append("451 Requested action aborted: try again later")
    channel_id = await store.channel("email", _config(port, "none", password=None))
    await _service(store, certificate)
    await store.open_incident()
    await store.wait_settled(channel_id, 1)
    attempts = await store.attempts(channel_id)
    assert [a["outcome"] for a in attempts] == ["retry", "delivered"]
    assert attempts[0]["error"].startswith("SMTP 451")
    assert len(box.messages) == 1


async def test_email_of_a_fleet_incident_names_the_group(
    store: Store, smtp_server: Any, certificate: tuple[Path, Path]
) -> None:
    from tests.api.notify.test_fleet_notices import GROUP, _open_fleet

    box, port = smtp_server("none")
    channel_id = await store.channel("email", _config(port, "none", password=None))
    await _service(store, certificate)
    incident = await _open_fleet(store, nodes=3)
    await store.wait_settled(channel_id, 1)
    ((_, _, msg, _),) = box.messages
    assert " ".join(msg["Subject"].split()) == (  # a long header is folded
        f"Fleet DDoS attack detected: dns_amplification on prefix {GROUP}, 3 nodes (high)"
    )
    text = _text(msg).replace("\r\n", "\n")
    assert f"Scope: fleet\nGroup: {GROUP}\nNodes: 3\n" in text and "Node:" not in text
    assert incident.uuid in msg["X-Fasttrace-Incident"]
    assert "spread over prefix 203.0.113.0/24 (3 nodes)" in text
