"""Bearer tokens shared by the profile service and the sync-connector: signed JWTs with key ids.

Tokens are JWS compact tokens signed with Ed25519 (``alg: EdDSA``); the header's ``kid``
names the key that signed them, so keys rotate by adding a new key id, issuing with it, and
removing the old public key once its tokens have expired. A service that only verifies
needs only public keys; the private key lives where tokens are issued (the token CLI,
``make run``). Keys travel as base64url of the raw 32 bytes, from settings, never code.

Claims: ``sub`` (who), ``roles`` (list of role names), ``kind`` (``person`` or
``service``), ``jti`` (token id, logged instead of the token), ``iss``, ``aud``, ``iat``, ``exp``.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from libs.kit import b64url
from libs.kit.errors import AppError

ALGORITHM = "EdDSA"
MAX_TOKEN_LENGTH = 4096
PrincipalKind = Literal["person", "service"]


class Role(StrEnum):
    """Who may do what; the route x role table of docs/security.md says which route needs which."""

    AUDIT_SYSTEM = "audit-system"
    OPERATOR = "operator"
    ADMIN = "admin"
    VIEWER = "viewer"
    NOTIFIER = "notifier"


SERVICE_ROLES = frozenset({Role.AUDIT_SYSTEM, Role.NOTIFIER})

# ADMIN may do what OPERATOR and VIEWER may, OPERATOR what VIEWER may. The service identities
# (AUDIT_SYSTEM, NOTIFIER) are implied by no other role: an admin does not decide name changes,
# and contact data for notifications is read by the notifier only.
ROLE_IMPLIES: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER}),
    Role.OPERATOR: frozenset({Role.OPERATOR, Role.VIEWER}),
    Role.VIEWER: frozenset({Role.VIEWER}),
    Role.AUDIT_SYSTEM: frozenset({Role.AUDIT_SYSTEM}),
    Role.NOTIFIER: frozenset({Role.NOTIFIER}),
}


def effective_roles(roles: frozenset[Role]) -> frozenset[Role]:
    return frozenset().union(*(ROLE_IMPLIES[role] for role in roles))


class TokenSettings(msgspec.Struct, frozen=True):
    """``<PREFIX>AUTH_*``: ``PUBLIC_KEYS`` is a JSON object ``{"<kid>": "<base64url public key>"}``."""

    # The keys that verify tokens: {"<kid>": "<base64url Ed25519 public key>"}; several during a rotation.
    public_keys: dict[str, str] = msgspec.field(default_factory=dict)
    # Only where tokens are issued; its public half is trusted too.
    signing_key_id: str = ""
    signing_key: str = ""

    # The iss and aud claims a token must carry (and that issued tokens get).
    issuer: str = "customer-profile"
    audience: str = "customer-profile"
    # Clock difference tolerated on exp, nbf and iat, in seconds.
    leeway_s: int = 30
    # A token that lives longer than this (exp - iat) is refused, and none is issued for longer.
    max_ttl_s: int = 30 * 24 * 3600

    def __repr__(self) -> str:  # never print the private key
        return f"TokenSettings(kids={sorted(self.public_keys)}, signing_key_id={self.signing_key_id!r})"


class Unauthenticated(AppError, code="UNAUTHENTICATED", status=401, title="Authentication required"): ...


class Forbidden(AppError, code="FORBIDDEN", status=403, title="Not allowed for this role"): ...


class TokenConfigError(ValueError):
    """Keys in the settings are malformed or missing."""


class VerifiedToken(msgspec.Struct, frozen=True):
    subject: str
    roles: frozenset[Role]
    kind: PrincipalKind
    token_id: str | None
    key_id: str
    expires_at: datetime


def public_key(encoded: str) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(b64url.decode(encoded))
    except ValueError as exc:
        raise TokenConfigError("a public key is not base64url of 32 raw Ed25519 bytes") from exc


def private_key(encoded: str) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(b64url.decode(encoded))
    except ValueError as exc:
        raise TokenConfigError("the signing key is not base64url of 32 raw Ed25519 bytes") from exc


def generate_key_pair() -> tuple[str, str]:
    """A new (private, public) Ed25519 pair, each base64url of the raw bytes."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return b64url.encode(private), b64url.encode(public)


def public_half(private_encoded: str) -> str:
    return b64url.encode(private_key(private_encoded).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


class TokenVerifier:
    """Checks signature, key id, issuer, audience, expiry and claim shapes; nothing else is trusted."""

    def __init__(self, settings: TokenSettings, *, cache_size: int = 0) -> None:
        """``cache_size`` > 0 remembers that many verified tokens (by their exact text) until they expire.

        Safe because the keys are fixed at start-up and nothing revokes a token: a token that
        verified once verifies again until its ``exp`` (plus leeway). It saves the Ed25519
        check for a client that sends the same token with every request.
        """
        self._settings = settings
        self._keys = {kid: public_key(encoded) for kid, encoded in settings.public_keys.items()}
        if settings.signing_key:
            self._keys.setdefault(settings.signing_key_id, private_key(settings.signing_key).public_key())
        self._cache_size = cache_size
        self._verified: dict[str, tuple[float, VerifiedToken]] = {}

    @property
    def key_ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def verify(self, token: str) -> VerifiedToken:
        if self._cache_size <= 0:
            return self._verify(token)
        cached = self._verified.get(token)
        if cached is not None and time.time() <= cached[0]:
            return cached[1]
        self._verified.pop(token, None)
        verified = self._verify(token)
        if len(self._verified) >= self._cache_size:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = (verified.expires_at.timestamp() + self._settings.leeway_s, verified)
        return verified

    def _verify(self, token: str) -> VerifiedToken:
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthenticated("the bearer token is empty or too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        kid = header.get("kid")
        if not isinstance(kid, str) or kid not in self._keys:
            raise Unauthenticated("the bearer token names an unknown key id")
        key = self._keys[kid]
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                audience=self._settings.audience,
                issuer=self._settings.issuer,
                leeway=self._settings.leeway_s,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the bearer token has expired") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is invalid") from None
        return _claims(claims, kid)


def _claims(claims: dict[str, Any], kid: str) -> VerifiedToken:
    subject, raw_roles, kind, jti = claims.get("sub"), claims.get("roles"), claims.get("kind"), claims.get("jti")
    if not isinstance(subject, str) or not 1 <= len(subject) <= 100:  # noqa: PLR2004 - the audit log's actor width
        raise Unauthenticated("the bearer token has no usable subject")
    if not isinstance(raw_roles, list) or not all(isinstance(r, str) for r in raw_roles):
        raise Unauthenticated("the bearer token has no role list")
    known = {r.value for r in Role}
    roles = frozenset(Role(r) for r in raw_roles if r in known)
    if kind not in {"person", "service"}:
        raise Unauthenticated("the bearer token has no kind (person or service)")
    return VerifiedToken(
        subject=subject,
        roles=roles,
        kind=kind,
        token_id=jti if isinstance(jti, str) else None,
        key_id=kid,
        expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
    )


class TokenIssuer:
    def __init__(self, settings: TokenSettings) -> None:
        if not settings.signing_key or not settings.signing_key_id:
            raise TokenConfigError("issuing tokens needs AUTH_SIGNING_KEY and AUTH_SIGNING_KEY_ID")
        self._settings = settings
        self._key = private_key(settings.signing_key)

    def issue(
        self,
        subject: str,
        roles: frozenset[Role],
        ttl: timedelta,
        kind: PrincipalKind | None = None,
        now: datetime | None = None,
    ) -> str:
        if not roles:
            raise TokenConfigError("a token needs at least one role")
        if ttl.total_seconds() > self._settings.max_ttl_s or ttl.total_seconds() <= 0:
            raise TokenConfigError(f"ttl must be positive and at most {self._settings.max_ttl_s} s")
        issued = now or datetime.now(UTC)
        claims = {
            "iss": self._settings.issuer,
            "aud": self._settings.audience,
            "sub": subject,
            "roles": sorted(r.value for r in roles),
            "kind": kind or ("service" if roles <= SERVICE_ROLES else "person"),
            "jti": uuid.uuid4().hex,
            "iat": int(issued.timestamp()),
            "exp": int((issued + ttl).timestamp()),
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._settings.signing_key_id})


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
