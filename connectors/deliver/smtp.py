"""Email delivery over SMTP (stdlib smtplib): one templated message per trigger."""

from __future__ import annotations

import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from connectors.deliver.sender import DeliveryError, Profile, Trigger
from connectors.deliver.templates import TemplateError, TemplateRenderer

_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")


def message_id(trigger_id: str, sender: str) -> str:
    """A Message-ID derived from the trigger id alone, so a redelivery has the same one."""
    local = _UNSAFE_ID_CHARS.sub("_", trigger_id).strip(".") or "trigger"
    domain = parseaddr(sender)[1].rpartition("@")[2] or "micromarketing.local"
    domain = _UNSAFE_ID_CHARS.sub("_", domain).strip(".") or "micromarketing.local"
    return f"<{local}@{domain}>"


def parse_hostport(target: str, default_port: int = 25) -> tuple[str, int]:
    """`HOST:PORT` (or `HOST`, or `[v6]:PORT`) to a (host, port) pair."""
    host, sep, port = target.rpartition(":")
    if not sep or "]" in port:
        host, port = target, str(default_port)
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected HOST:PORT, got {target!r}")
    return host, int(port)


class SmtpSender:
    """Renders the trigger's email and sends it to the profile's address."""

    name = "smtp"
    requires_email = True

    def __init__(
        self,
        host: str,
        port: int,
        *,
        sender: str,
        renderer: TemplateRenderer | None = None,
        timeout: float = 30.0,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.renderer = renderer if renderer is not None else TemplateRenderer()
        self._timeout = timeout
        self._username = username
        self._password = password
        self._starttls = starttls

    def build(self, trigger: Trigger, profile: Profile) -> EmailMessage:
        """The email for `trigger`, to `profile.email`."""
        if not profile.email:
            raise DeliveryError("consumer has no email", retryable=False)
        try:
            rendered = self.renderer.render(trigger, profile)
        except TemplateError as exc:
            raise DeliveryError(str(exc), retryable=False) from exc
        trigger_id = str(trigger["trigger_id"])
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = profile.email
        msg["Subject"] = rendered.subject
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id(trigger_id, self.sender)
        msg["X-Trigger-Id"] = trigger_id
        if trigger.get("campaign"):
            msg["X-Campaign"] = str(trigger["campaign"])
        msg.set_content(rendered.text)
        if rendered.html is not None:
            msg.add_alternative(rendered.html, subtype="html")
        return msg

    def send(self, trigger: Trigger, profile: Profile | None) -> None:
        if profile is None or not profile.email:
            raise DeliveryError("consumer has no email", retryable=False)
        msg = self.build(trigger, profile)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout) as smtp:
                if self._starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                f"recipient refused: {exc.recipients}",
                retryable=all(400 <= c < 500 for c in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"SMTP {exc.smtp_code}: {exc.smtp_error!r}", retryable=400 <= exc.smtp_code < 500
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise DeliveryError(f"SMTP server disconnected: {exc}", retryable=True) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"SMTP {self.host}:{self.port}: {exc}", retryable=True) from exc

    def close(self) -> None:
        """Nothing to release (one connection per message)."""
