"""Field encryption, keyed hashes and how contact data is sealed (no database)."""

from __future__ import annotations

import pytest

from libs.kit.crypto import (
    CryptoConfigError,
    CryptoSettings,
    FieldCipher,
    KeyedHasher,
    UnreadableValue,
    decode_key,
    generate_key,
)
from services.profile.shared.storage.contact_crypto import ContactProtector, normalized_phone
from services.profile.shared.web.trace_redaction import redact_query

K1, K2 = generate_key(), generate_key()


def cipher(active: str = "k1", **keys: str) -> FieldCipher:
    return FieldCipher({kid: decode_key(key, kid) for kid, key in (keys or {"k1": K1}).items()}, active)


def test_a_fresh_nonce_per_value_and_the_key_id_travels_with_it() -> None:
    sealed = {cipher().seal(b"13800138000", b"customer/C1/contact_phone") for _ in range(100)}
    assert len(sealed) == 100  # never two equal seals of one value
    value = next(iter(sealed))
    assert FieldCipher.key_id(value) == "k1"
    assert b"13800138000" not in value
    assert cipher().open(value, b"customer/C1/contact_phone") == b"13800138000"


def test_associated_data_binds_a_value_to_its_row_and_column() -> None:
    value = cipher().seal(b"zhang@example.com", b"customer/C1/contact_email")
    for other in (b"customer/C2/contact_email", b"customer/C1/contact_phone"):
        with pytest.raises(UnreadableValue):
            cipher().open(value, other)


def test_tampering_and_unknown_keys_are_refused() -> None:
    value = bytearray(cipher().seal(b"x", b"ad"))
    value[-1] ^= 1
    with pytest.raises(UnreadableValue):
        cipher().open(bytes(value), b"ad")
    with pytest.raises(UnreadableValue, match="not configured"):
        cipher("k2", k2=K2).open(cipher().seal(b"x", b"ad"), b"ad")
    for garbage in (b"", b"\x02abc", b"\x01\x02k1short"):
        with pytest.raises(UnreadableValue):
            cipher().open(garbage, b"ad")


def test_rotation_seals_with_the_active_key_and_opens_with_any_configured() -> None:
    old = cipher().seal(b"v", b"ad")
    both = cipher("k2", k1=K1, k2=K2)
    assert both.open(old, b"ad") == b"v"
    assert FieldCipher.key_id(both.seal(b"v", b"ad")) == "k2"


def test_keys_are_checked_at_start_up() -> None:
    with pytest.raises(CryptoConfigError):
        FieldCipher.from_settings(CryptoSettings())
    with pytest.raises(CryptoConfigError):
        FieldCipher.from_settings(CryptoSettings(keys={"k1": K1}, active_key_id="k9"))
    with pytest.raises(CryptoConfigError, match="32 bytes"):
        decode_key("c2hvcnQ", "key")
    with pytest.raises(CryptoConfigError):
        KeyedHasher.from_settings(CryptoSettings(keys={"k1": K1}, active_key_id="k1"))
    settings = CryptoSettings(keys={"k1": K1}, active_key_id="k1", hash_key=K2)
    assert K1 not in repr(settings)
    assert K2 not in repr(settings)


def test_keyed_hashes_are_stable_keyed_and_unambiguous() -> None:
    hasher = KeyedHasher(decode_key(K1, "k"))
    assert hasher.digest(b"a", b"bc") == hasher.digest(b"a", b"bc")
    assert hasher.digest(b"a", b"bc") != hasher.digest(b"ab", b"c")
    assert hasher.digest(b"a") != KeyedHasher(decode_key(K2, "k")).digest(b"a")


def test_contact_data_sealed_per_customer_with_a_searchable_phone_hash() -> None:
    protector = ContactProtector.from_settings(CryptoSettings(keys={"k1": K1}, active_key_id="k1", hash_key=K2))
    contact = {"contact_phone": "+86 138-0013 8000", "contact_email": "z@example.com", "contact_address": None}
    stored = protector.seal("C1", contact)
    assert stored["contact_address_encrypted"] is None
    assert stored["contact_key_id"] == "k1"
    assert protector.open({"customer_id": "C1", **stored}) == contact
    with pytest.raises(UnreadableValue):
        protector.open({"customer_id": "C2", **stored})
    assert stored["contact_phone_hash"] == protector.phone_hash("+8613800138000")
    assert normalized_phone("+86 (138) 0013-8000") == "+8613800138000"
    again = protector.seal("C1", contact)
    assert again["contact_digest"] == stored["contact_digest"]
    assert again["contact_phone_encrypted"] != stored["contact_phone_encrypted"]
    other = protector.seal("C1", {**contact, "contact_address": ""})
    assert other["contact_digest"] != stored["contact_digest"]  # None and "" differ


def test_stored_responses_are_bound_to_their_scope_and_key() -> None:
    protector = ContactProtector.from_settings(CryptoSettings(keys={"k1": K1}, active_key_id="k1", hash_key=K2))
    sealed, key_id = protector.seal_response("POST /v1/customers by alice", "k-1", b'{"contactPhone":"1"}')
    assert key_id == "k1"
    assert protector.open_response("POST /v1/customers by alice", "k-1", sealed) == b'{"contactPhone":"1"}'
    with pytest.raises(UnreadableValue):
        protector.open_response("POST /v1/customers by mallory", "k-1", sealed)


def test_sensitive_query_values_are_redacted_for_traces() -> None:
    assert redact_query("contactPhone=138%20001&limit=5&customerId=C1") == (
        "contactPhone=REDACTED&limit=5&customerId=C1"
    )
    assert redact_query("access_token=abc&x=%E5%BC%A0") == "access_token=REDACTED&x=%E5%BC%A0"
