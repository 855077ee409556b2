"""``X-Signature`` of a request body: HMAC-SHA256 with the external system's shared secret."""

from __future__ import annotations

import hashlib
import hmac

from contracts.external_systems import SIGNATURE_PREFIX


def sign_body(secret: str, body: bytes) -> str:
    """The header value for the exact body bytes sent: ``sha256=<hex digest>``."""
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
