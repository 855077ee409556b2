"""Dev-only keys for ``make run``: made once into ``.data/dev-keys.json`` (mode 0600, never committed).

They reach the processes as settings (``PROFILE_AUTH_*``, ``PROFILE_CRYPTO_*``,
``CONNECTOR_AUTH_PUBLIC_KEYS``), like production secrets do; nothing is compiled in. The
same file is reused on the next run, so data sealed in ``.data/postgres`` stays readable.
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import msgspec

from libs.devstack.topology import Keys
from libs.kit.crypto import CryptoSettings, generate_key
from libs.kit.tokens import Role, TokenIssuer, TokenSettings, generate_key_pair

DEMO_TOKEN_TTL = timedelta(hours=12)
SERVICE_TOKEN_TTL = timedelta(days=30)
DEMO_SUBJECTS = {
    Role.ADMIN: "demo-admin",
    Role.OPERATOR: "demo-operator",
    Role.VIEWER: "demo-viewer",
    Role.AUDIT_SYSTEM: "demo-audit-system",
    Role.NOTIFIER: "sync-connector-notifier",
}


class DevKeys(msgspec.Struct, frozen=True):
    signing_key_id: str
    signing_key: str
    public_key: str
    crypto_key_id: str
    crypto_key: str
    hash_key: str

    @classmethod
    def load_or_create(cls, path: Path) -> DevKeys:
        if path.exists():
            return msgspec.json.decode(path.read_bytes(), type=cls)
        private, public = generate_key_pair()
        keys = cls(
            signing_key_id="dev-1",
            signing_key=private,
            public_key=public,
            crypto_key_id="dev-aes-1",
            crypto_key=generate_key(),
            hash_key=generate_key(),
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(msgspec.json.encode(keys))
        return keys

    def token_settings(self) -> TokenSettings:
        return TokenSettings(
            public_keys={self.signing_key_id: self.public_key},
            signing_key_id=self.signing_key_id,
            signing_key=self.signing_key,
        )

    def crypto_settings(self) -> CryptoSettings:
        return CryptoSettings(
            keys={self.crypto_key_id: self.crypto_key}, active_key_id=self.crypto_key_id, hash_key=self.hash_key
        )

    def profile_env(self) -> dict[str, str]:
        return {
            "PROFILE_AUTH_PUBLIC_KEYS": json.dumps({self.signing_key_id: self.public_key}),
            "PROFILE_AUTH_SIGNING_KEY_ID": self.signing_key_id,
            "PROFILE_AUTH_SIGNING_KEY": self.signing_key,
            "PROFILE_CRYPTO_KEYS": json.dumps({self.crypto_key_id: self.crypto_key}),
            "PROFILE_CRYPTO_ACTIVE_KEY_ID": self.crypto_key_id,
            "PROFILE_CRYPTO_HASH_KEY": self.hash_key,
        }

    def connector_env(self) -> dict[str, str]:
        """Verification only: the connector never holds a private key."""
        return {"CONNECTOR_AUTH_PUBLIC_KEYS": json.dumps({self.signing_key_id: self.public_key})}

    def demo_tokens(self) -> dict[Role, str]:
        issuer = TokenIssuer(self.token_settings())
        return {
            role: issuer.issue(subject, frozenset({role}), DEMO_TOKEN_TTL) for role, subject in DEMO_SUBJECTS.items()
        }

    def service_token(self, role: Role) -> str:
        """A token the make-run processes use among themselves; outlives a long session."""
        return TokenIssuer(self.token_settings()).issue(DEMO_SUBJECTS[role], frozenset({role}), SERVICE_TOKEN_TTL)

    def topology_keys(self) -> Keys:
        """The keys of ``make run``'s processes, the connector's notifier token among them."""
        return Keys(self.profile_env(), self.connector_env(), self.service_token(Role.NOTIFIER))
