"""``PROFILE_CONSOLE_*``: the admin console's settings."""

from __future__ import annotations

import msgspec


class ConsoleSettings(msgspec.Struct, frozen=True):
    enabled: bool = True
    # How often the pipeline overview refreshes itself in the browser.
    refresh_s: float = 5.0
    # Send the session cookie over HTTPS only; turn on wherever the console is served over TLS.
    cookie_secure: bool = False
    # The session cookie lives at most this long (the token's own expiry ends it earlier).
    session_max_age_s: int = 8 * 3600
    page_size: int = 50
