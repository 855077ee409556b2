"""Notification settings: ``CONNECTOR_NOTIFY_*`` and ``CONNECTOR_PROFILE_*``, built at start-up."""

from __future__ import annotations

from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from libs.kit.settings import require_at_least_one


class Channel(StrEnum):
    """``notification_records.channel``."""

    EMAIL = "email"
    SMS = "sms"

    @property
    def code(self) -> str:
        """The channel's label in metrics and logs shared with the external systems (``EMAIL``, ``SMS``)."""
        return self.value.upper()


class Language(StrEnum):
    ZH = "zh"
    EN = "en"


class SmtpSecurity(StrEnum):
    NONE = "none"  # plain SMTP (the local dev server)
    STARTTLS = "starttls"
    TLS = "tls"  # implicit TLS (port 465)


class ProfileApiSettings(msgspec.Struct, frozen=True):
    """Where the sender reads contact data: ``CONNECTOR_PROFILE_URL``, ``CONNECTOR_PROFILE_TOKEN``."""

    # The profile service's API, where contact data is read.
    url: str = "http://127.0.0.1:8000"
    # A bearer token of the profile service with the ``notifier`` role (service identity).
    token: str = ""

    def __repr__(self) -> str:  # settings get printed; the token must not
        return f"ProfileApiSettings(url={self.url!r}, token={'<set>' if self.token else '<empty>'})"


class NotifySettings(msgspec.Struct, frozen=True):
    # Off unless configured: the sender needs a profile token, an SMTP server and an SMS gateway.
    enabled: bool = False
    # The channels a customer is told by (JSON list): e-mail, SMS or both.
    channels: list[Channel] = msgspec.field(default_factory=lambda: [Channel.EMAIL, Channel.SMS])
    # Seed 000 7.3: 5 attempts in all, a fixed 2 s between them (max_attempts unset: no count cap, sent
    # until the deadline). Whatever the count, a notification is not sent later than delivery_deadline_s
    # after its event was read; a probe of a channel that is down spends no attempt.
    max_attempts: int | None = 5
    backoff_s: float = 2.0
    delivery_deadline_s: float = 24 * 3600.0
    # Each of the contact lookup and the send is bounded by timeout_s; a claim outlives both.
    timeout_s: float = 10.0
    claim_lease_s: float = 30.0
    # How often due notifications are looked for, and how many are sent at once.
    poll_interval_s: float = 1.0
    concurrency: int = 10
    # A channel's circuit breaker: open after this many failures in a row, probed after the cool-down.
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    # An event older than this is recorded skipped_stale, not sent: a group that starts on a topic
    # with a long history must not greet customers with last year's changes.
    max_event_age_s: float = 7 * 24 * 3600.0
    # The language of a message to a customer whose own is unknown, and the zone its times are shown in.
    default_language: Language = Language.ZH
    timezone: str = "Asia/Shanghai"
    # The SMTP server that sends the e-mails: security none, starttls or tls; a login if it wants one.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 8025
    smtp_security: SmtpSecurity = SmtpSecurity.NONE
    smtp_username: str = ""
    smtp_password: str = ""
    # The From of the e-mails: address and display name.
    mail_from: str = "no-reply@customer-profile.example"
    mail_from_name: str = "客户服务 Customer Service"
    # Message-ID domain: the id is "<event id>.<channel>@<domain>", the same on every attempt.
    message_id_domain: str = "customer-profile.example"
    # The SMS gateway (HTTP) and its bearer token.
    sms_url: str = "http://127.0.0.1:8010"
    sms_token: str = ""

    def __post_init__(self) -> None:
        # max_attempts None: no count cap.
        require_at_least_one(self, "max_attempts", "concurrency", "breaker_failure_threshold")
        if self.delivery_deadline_s <= 0 or self.backoff_s <= 0:
            msg = "delivery_deadline_s and backoff_s must be positive"
            raise ValueError(msg)
        if self.claim_lease_s <= 2 * self.timeout_s:
            msg = "claim_lease_s must be longer than two timeouts (the contact lookup and the send)"
            raise ValueError(msg)
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            msg = f"unknown timezone {self.timezone!r}"
            raise ValueError(msg) from exc

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def __repr__(self) -> str:  # never print the SMTP password or the gateway token
        return (
            f"NotifySettings(enabled={self.enabled}, channels={[c.value for c in self.channels]}, "
            f"smtp={self.smtp_host}:{self.smtp_port}, sms_url={self.sms_url!r})"
        )
