"""``PROFILE_CONSOLE_*``: the admin console's settings."""

from __future__ import annotations

import msgspec

TRACE_ID_PLACEHOLDER = "{trace_id}"


class ConsoleSettings(msgspec.Struct, frozen=True):
    # Serve the admin console under /console/ (false: the API alone).
    enabled: bool = True
    # How often the pipeline overview refreshes itself in the browser.
    refresh_s: float = 5.0
    # Send the session cookie over HTTPS only; turn on wherever the console is served over TLS.
    cookie_secure: bool = False
    # The session cookie lives at most this long (the token's own expiry ends it earlier).
    session_max_age_s: int = 8 * 3600
    # Rows per page of the console's lists.
    page_size: int = 50
    # The trace UI's page of one trace, e.g. "http://127.0.0.1:16686/trace/{trace_id}" (Jaeger); the
    # journey page links each change's trace there. Empty: no links (the trace id is still shown).
    trace_url_template: str = ""

    def __post_init__(self) -> None:
        template = self.trace_url_template
        if template and (not template.startswith(("http://", "https://")) or TRACE_ID_PLACEHOLDER not in template):
            msg = f"trace_url_template must be an http(s) URL containing {TRACE_ID_PLACEHOLDER}"
            raise ValueError(msg)

    def trace_url(self, trace_id: str) -> str | None:
        """The link to one trace, or None when no trace UI is set."""
        if not self.trace_url_template:
            return None
        return self.trace_url_template.replace(TRACE_ID_PLACEHOLDER, trace_id)
