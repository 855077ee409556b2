"""Admin notification settings: ``CONNECTOR_ADMIN_NOTIFY_*``, built at start-up."""

from __future__ import annotations

import msgspec

from libs.kit.settings import require_at_least_one


class AdminNotifySettings(msgspec.Struct, frozen=True):
    # The admins' list (CONNECTOR_ADMIN_NOTIFY_TO='["ops@example.com"]'); empty: admin notifications off.
    # The mails go through the customer notifications' SMTP server (CONNECTOR_NOTIFY_SMTP_*).
    to: list[str] = msgspec.field(default_factory=list)
    mail_from: str = ""  # empty: CONNECTOR_NOTIFY_MAIL_FROM
    # One mail per cause and window: the first occurrence of a cause opens a window of window_s; the
    # mail goes gather_s after it opened (so a burst is one mail with its count), later occurrences of
    # the window are counted (console) and mail nothing.
    window_s: float = 900.0
    gather_s: float = 60.0
    # Occurrences a mail lists as examples (the rest are counted).
    max_examples: int = 5
    # A breaker of this instance not closed for this long is a cause of its own (breaker-open:<code>).
    breaker_open_s: float = 600.0
    # How often the watcher looks for new causes (the connector's tables, its breakers, the profile
    # service's signals), and how many rows one round takes per source.
    poll_interval_s: float = 10.0
    batch_size: int = 500
    # The mail is retried (backoff from backoff_base_s doubling to backoff_max_s) until this deadline.
    delivery_deadline_s: float = 24 * 3600.0
    backoff_base_s: float = 2.0
    backoff_max_s: float = 300.0
    # The SMTP server's circuit breaker: open after this many failures in a row, probed after the cool-down.
    breaker_failure_threshold: int = 5
    breaker_cooldown_s: float = 30.0
    # A mail being sent holds its row this long; a crashed sender's mail is taken up by another instance.
    claim_lease_s: float = 60.0
    # Starts every subject, so the admins' mail filters can find them.
    subject_prefix: str = "[customer-profile]"
    # The console's address, for the link in the mail (empty: no link).
    console_url: str = ""

    @property
    def enabled(self) -> bool:
        return bool(self.to)

    def __post_init__(self) -> None:
        if any("@" not in address or "\n" in address or "," in address for address in self.to):
            msg = "admin_notify to: every entry must be one e-mail address"
            raise ValueError(msg)
        positive = (self.window_s, self.gather_s, self.breaker_open_s, self.poll_interval_s, self.delivery_deadline_s)
        if min(*positive, self.backoff_base_s, self.breaker_cooldown_s, self.claim_lease_s) <= 0:
            msg = "admin_notify windows, delays, deadlines and leases must be positive"
            raise ValueError(msg)
        if self.gather_s > self.window_s:
            msg = "admin_notify gather_s must not be longer than window_s"
            raise ValueError(msg)
        require_at_least_one(self, "max_examples", "batch_size", "breaker_failure_threshold", label="admin_notify ")
        if self.backoff_max_s < self.backoff_base_s:
            msg = "admin_notify backoff_max_s must be at least backoff_base_s"
            raise ValueError(msg)

    def __repr__(self) -> str:
        return f"AdminNotifySettings(to={len(self.to)} addresses, window_s={self.window_s}, gather_s={self.gather_s})"
