"""Send an email over SMTP (stdlib smtplib in a worker thread, bounded by a timeout)."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from concurrent.futures import Executor
from email.message import EmailMessage

from control.notify.config import EmailConfig
from control.notify.outcome import Outcome


def _send_blocking(
    cfg: EmailConfig, msg: EmailMessage, timeout: float, tls: ssl.SSLContext
) -> None:
    smtp: smtplib.SMTP
    if cfg.security == "tls":
        smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=tls)
    else:
        smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
    with smtp:
        smtp.ehlo()
        if cfg.security == "starttls":
            smtp.starttls(context=tls)
            smtp.ehlo()
        if cfg.username is not None and cfg.password is not None:
            smtp.login(cfg.username, cfg.password)
        smtp.send_message(msg, from_addr=cfg.from_addr, to_addrs=cfg.to)


async def send_email(
    cfg: EmailConfig,
    msg: EmailMessage,
    *,
    timeout_sec: float,
    tls: ssl.SSLContext | None = None,
    executor: Executor | None = None,
) -> Outcome:
    """Deliver `msg`; `executor` keeps hung SMTP servers from starving the default pool."""
    context = tls or ssl.create_default_context()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(executor, _send_blocking, cfg, msg, timeout_sec, context)
    except smtplib.SMTPResponseException as exc:
        # 4xx replies are transient by SMTP's definition, 5xx permanent.
        raw = exc.smtp_error
        detail = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        return Outcome(
            delivered=False,
            retryable=400 <= exc.smtp_code < 500,
            error=f"SMTP {exc.smtp_code}: {detail[:300]}",
        )
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        return Outcome(
            delivered=False,
            retryable=all(400 <= c < 500 for c in codes),
            error=f"SMTP recipients refused: {sorted(exc.recipients)}",
        )
    except smtplib.SMTPNotSupportedError as exc:
        # The server lacks what the config asks for (AUTH, STARTTLS): a config problem.
        return Outcome(delivered=False, retryable=False, error=f"SMTP not supported: {exc}")
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(delivered=False, retryable=True, error=f"SMTP {type(exc).__name__}: {exc}")
    return Outcome.ok()
