"""Unpadded base64url (RFC 4648 section 5), the text form of keys and cursors: the ``=`` padding is left off."""

from __future__ import annotations

import base64


def encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    """The bytes of ``text``, padded or not; ValueError (binascii.Error) where it is not base64url."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
