"""Notification channels behind one interface: `send(config, message, delivery, snapshot)` either
returns (delivered) or raises SendError, temporary (retry later) or permanent (give up, show it).

- webhook: HTTP POST of the message as JSON, signed the way the big webhook senders do it: header
  `X-Matthan-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`, with a
  per-endpoint secret. `X-Matthan-Delivery` is the queue row's id: a receiver drops repeats by it
  (delivery is at least once).
- email: SMTP, plain text with the alert page's link and the snapshot attached.
- gateway: any SMS or OTT (Zalo ZNS) HTTP API through a templated request: method, URL, headers and
  body with {{placeholders}} (see messages.Message.fields), so a provider needs no code.
"""

import hashlib
import hmac
import json
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloud.attention.messages import Message
from cloud.settings import AttentionSettings

SIGNATURE_HEADER = "X-Matthan-Signature"
DELIVERY_HEADER = "X-Matthan-Delivery"
KINDS = ("webhook", "email", "gateway")

HttpUrl = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]
Address = Annotated[str, StringConstraints(pattern=r"^[^@\s<>]+@[^@\s<>]+$", max_length=254)]


class SendError(Exception):
    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason[:500])
        self.permanent = permanent


class WebhookConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    secret: str = Field(min_length=16, max_length=200)


class EmailConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: list[Address] = Field(min_length=1, max_length=20)
    attach_snapshot: bool = True


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    method: Literal["GET", "POST", "PUT"] = "POST"
    url: Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$", max_length=2000)]
    headers: dict[
        Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")],
        Annotated[str, StringConstraints(max_length=2000)],
    ] = Field(default_factory=dict, max_length=20)
    body: str = Field(default="", max_length=10_000)
    content_type: str = Field(default="application/json", max_length=100)


CONFIGS: dict[str, type[BaseModel]] = {
    "webhook": WebhookConfig,
    "email": EmailConfig,
    "gateway": GatewayConfig,
}


def parse_config(kind: str, config: dict[str, Any]) -> BaseModel:
    model = CONFIGS.get(kind)
    if model is None:
        raise ValueError(f"unknown channel {kind!r}: one of {', '.join(KINDS)}")
    return model.model_validate(config)


class Channel(Protocol):
    def send(
        self, config: dict[str, Any], message: Message, delivery: int, snapshot: bytes | None
    ) -> None: ...


# --- webhook ------------------------------------------------------------------------------------


def sign(secret: str, body: bytes, at: int) -> str:
    mac = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={mac}"


def verify(secret: str, header: str, body: bytes, now: float | None = None, tolerance_s: float = 300) -> bool:
    """What a receiver does: recompute the HMAC and refuse a stale timestamp (replays)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        at = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - at) > tolerance_s:
        return False
    expected = sign(secret, body, at).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def _http_outcome(resp: httpx.Response) -> None:
    if 200 <= resp.status_code < 300:
        return
    # A refusal (bad URL, bad signature, bad template) will not mend itself; a busy or broken
    # receiver might.
    permanent = 400 <= resp.status_code < 500 and resp.status_code not in (408, 425, 429)
    raise SendError(f"HTTP {resp.status_code}: {resp.text[:200]}", permanent=permanent)


class WebhookChannel:
    def __init__(self, settings: AttentionSettings, client: httpx.Client) -> None:
        self.client = client

    def send(self, config: dict[str, Any], message: Message, delivery: int, snapshot: bytes | None) -> None:
        cfg = WebhookConfig.model_validate(config)
        body = json.dumps(
            {"type": "alert.escalated", "delivery": delivery, **message.model_dump(mode="json")},
            ensure_ascii=False,
        ).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: sign(cfg.secret, body, int(time.time())),
            DELIVERY_HEADER: str(delivery),
            "User-Agent": "matthan-cloud",
        }
        try:
            resp = self.client.post(cfg.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None
        _http_outcome(resp)


# --- e-mail -------------------------------------------------------------------------------------


class EmailChannel:
    def __init__(self, settings: AttentionSettings) -> None:
        self.s = settings

    def send(self, config: dict[str, Any], message: Message, delivery: int, snapshot: bytes | None) -> None:
        cfg = EmailConfig.model_validate(config)
        if not self.s.smtp_host:
            raise SendError("no SMTP server configured (MATTHAN_CLOUD_ATTENTION_SMTP_HOST)", permanent=True)
        mail = EmailMessage()
        mail["From"] = self.s.smtp_from
        mail["To"] = ", ".join(cfg.to)
        mail["Subject"] = message.subject
        mail["Message-ID"] = f"<{message.event_id}.{delivery}@matthan>"  # the same on a resend
        mail.set_content(message.text)
        if snapshot is not None and cfg.attach_snapshot:
            mail.add_attachment(
                snapshot, maintype="image", subtype="jpeg", filename=f"{message.event_id}.jpg"
            )
        try:
            with smtplib.SMTP(self.s.smtp_host, self.s.smtp_port, timeout=self.s.send_timeout_s) as smtp:
                if self.s.smtp_starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.s.smtp_username and self.s.smtp_password:
                    smtp.login(self.s.smtp_username, self.s.smtp_password)
                smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            raise SendError(f"recipients refused: {exc.recipients}", permanent=True) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None


# --- SMS / OTT gateway --------------------------------------------------------------------------


def render(template: str, fields: dict[str, Any], escape: str = "none") -> str:
    """{{name}} → the field's value; escape 'json' (inside a JSON string) or 'url'."""
    out = template
    for name, value in fields.items():
        text = str(value)
        if escape == "json":
            text = json.dumps(text, ensure_ascii=False)[1:-1]
        elif escape == "url":
            text = quote(text, safe="")
        out = out.replace("{{" + name + "}}", text)
    return out


class GatewayChannel:
    def __init__(self, settings: AttentionSettings, client: httpx.Client) -> None:
        self.client = client

    def send(self, config: dict[str, Any], message: Message, delivery: int, snapshot: bytes | None) -> None:
        cfg = GatewayConfig.model_validate(config)
        fields = {**message.fields(), "delivery": delivery}
        body_escape = (
            "json" if "json" in cfg.content_type else "url" if "form" in cfg.content_type else "none"
        )
        headers = {k: render(v, fields) for k, v in cfg.headers.items()}
        headers.setdefault("Content-Type", cfg.content_type)
        try:
            resp = self.client.request(
                cfg.method,
                render(cfg.url, fields, "url"),
                content=render(cfg.body, fields, body_escape).encode() if cfg.method != "GET" else None,
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise SendError(f"{type(exc).__name__}: {exc}") from None
        _http_outcome(resp)


def channels(settings: AttentionSettings, client: httpx.Client | None = None) -> dict[str, Channel]:
    """The channels sharing one HTTP client: its connection pool and TLS context are made once
    (a client per message spent most of a send building its TLS context)."""
    client = client or http_client(settings)
    return {
        "webhook": WebhookChannel(settings, client),
        "email": EmailChannel(settings),
        "gateway": GatewayChannel(settings, client),
    }


def http_client(settings: AttentionSettings) -> httpx.Client:
    return httpx.Client(timeout=settings.send_timeout_s, follow_redirects=False)
