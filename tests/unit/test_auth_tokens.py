"""Bearer tokens: what the verifier accepts and refuses, role implication (no server needed)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from libs.kit.tokens import (
    Role,
    TokenConfigError,
    TokenIssuer,
    TokenSettings,
    TokenVerifier,
    Unauthenticated,
    bearer_token,
    effective_roles,
    generate_key_pair,
)
from services.profile.access.auth import Principal
from services.profile.access.token_cli import parse_ttl

PRIVATE, PUBLIC = generate_key_pair()
SIGNING = TokenSettings(signing_key_id="k1", signing_key=PRIVATE)
VERIFYING = TokenSettings(public_keys={"k1": PUBLIC})


def issue(*roles: Role, ttl: timedelta = timedelta(hours=1), now: datetime | None = None) -> str:
    return TokenIssuer(SIGNING).issue("alice", frozenset(roles or {Role.VIEWER}), ttl, now=now)


def test_a_signed_token_is_verified_with_the_public_key_only() -> None:
    verified = TokenVerifier(VERIFYING).verify(issue(Role.OPERATOR, Role.VIEWER))
    assert (verified.subject, verified.roles, verified.kind, verified.key_id) == (
        "alice",
        frozenset({Role.OPERATOR, Role.VIEWER}),
        "person",
        "k1",
    )
    assert verified.token_id
    service = TokenVerifier(VERIFYING).verify(issue(Role.AUDIT_SYSTEM))
    assert service.kind == "service"


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("", "empty"),
        ("x" * 5000, "too long"),
        ("not.a.jwt", "not a JWT"),
        (issue(ttl=timedelta(minutes=5), now=datetime.now(UTC) - timedelta(hours=1)), "expired"),
        (
            TokenIssuer(TokenSettings(signing_key_id="k9", signing_key=PRIVATE)).issue(
                "alice", frozenset({Role.ADMIN}), timedelta(hours=1)
            ),
            "unknown key id",
        ),
        (
            TokenIssuer(TokenSettings(signing_key_id="k1", signing_key=generate_key_pair()[0])).issue(
                "alice", frozenset({Role.ADMIN}), timedelta(hours=1)
            ),
            "invalid",
        ),
    ],
)
def test_refused_tokens(token: str, reason: str) -> None:
    with pytest.raises(Unauthenticated, match=reason):
        TokenVerifier(VERIFYING).verify(token)


def _unsigned(claims: dict[str, object], header: dict[str, str]) -> str:
    def part(value: dict[str, object] | dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part(claims)}."


def test_alg_none_hs256_and_foreign_audiences_are_refused() -> None:
    claims = {
        "sub": "mallory",
        "roles": ["admin"],
        "kind": "person",
        "iss": "customer-profile",
        "aud": "customer-profile",
        "iat": 0,
        "exp": 4_102_444_800,
    }
    with pytest.raises(Unauthenticated):
        TokenVerifier(VERIFYING).verify(_unsigned(claims, {"alg": "none", "kid": "k1"}))
    forged = jwt.encode(claims, PUBLIC, algorithm="HS256", headers={"kid": "k1"})  # key confusion
    with pytest.raises(Unauthenticated):
        TokenVerifier(VERIFYING).verify(forged)
    other = TokenIssuer(TokenSettings(signing_key_id="k1", signing_key=PRIVATE, audience="another-api"))
    with pytest.raises(Unauthenticated):
        TokenVerifier(VERIFYING).verify(other.issue("alice", frozenset({Role.ADMIN}), timedelta(hours=1)))


def test_unknown_roles_are_ignored_and_issuing_checks_its_input() -> None:
    claims = {
        "sub": "bob",
        "roles": ["superuser", "viewer"],
        "kind": "person",
        "iss": "customer-profile",
        "aud": "customer-profile",
        "iat": int(datetime.now(UTC).timestamp()),
        "exp": 4_102_444_800,
    }
    token = jwt.encode(claims, TokenIssuer(SIGNING)._key, algorithm="EdDSA", headers={"kid": "k1"})
    assert TokenVerifier(VERIFYING).verify(token).roles == frozenset({Role.VIEWER})
    with pytest.raises(TokenConfigError):
        TokenIssuer(TokenSettings())
    with pytest.raises(TokenConfigError):
        TokenIssuer(SIGNING).issue("alice", frozenset(), timedelta(hours=1))
    with pytest.raises(TokenConfigError):
        TokenIssuer(SIGNING).issue("alice", frozenset({Role.ADMIN}), timedelta(days=365))
    assert PRIVATE not in repr(SIGNING)


def test_role_implication_keeps_service_identities_apart() -> None:
    assert effective_roles(frozenset({Role.ADMIN})) == {Role.ADMIN, Role.OPERATOR, Role.VIEWER}
    assert Role.AUDIT_SYSTEM not in effective_roles(frozenset({Role.ADMIN}))
    assert Role.NOTIFIER not in effective_roles(frozenset(Role) - {Role.NOTIFIER})
    admin = Principal("a", frozenset({Role.ADMIN}), "person", None)
    assert admin.may_act_as({Role.VIEWER})
    assert not admin.may_act_as({Role.AUDIT_SYSTEM, Role.NOTIFIER})


def test_bearer_header_parsing_and_ttl_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token(None) is None
    assert bearer_token("Bearer ") is None
    assert parse_ttl("8h") == timedelta(hours=8)
    assert parse_ttl("30m") == timedelta(minutes=30)
    assert parse_ttl("7d") == timedelta(days=7)
    assert parse_ttl("90") == timedelta(seconds=90)


def test_a_caching_verifier_remembers_only_good_tokens_and_only_until_they_expire(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(VERIFYING, cache_size=2)
    token = issue(Role.AUDIT_SYSTEM, ttl=timedelta(minutes=10))
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # remembered: no second signature check
    header, claims, signature = token.split(".")
    forged = ".".join([header, claims, ("B" if signature[0] == "A" else "A") + signature[1:]])
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)
    with pytest.raises(Unauthenticated):
        verifier.verify(forged)  # refusals are never remembered
    for _ in range(2):  # bounded: the oldest entries make room
        verifier.verify(issue(Role.VIEWER))
    assert verifier.verify(token) is not first
    remembered = verifier.verify(token)
    # Past exp + leeway the entry is not served: the full check runs (and refuses, by its own clock).
    later = datetime.now(UTC).timestamp() + 11 * 60
    monkeypatch.setattr("libs.kit.tokens.time.time", lambda: later)
    assert verifier.verify(token) is not remembered
