"""``X-Signature`` of a request body: HMAC-SHA256 with the external system's shared secret."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Signature"


def sign_body(secret: str, body: bytes) -> str:
    """The header value for the exact body bytes sent: ``sha256=<hex digest>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
