"""A test CA, certificates signed by it (PEM files), and an Apache Kafka broker with TLS and SASL listeners.

The broker keeps its PLAINTEXT listener (the harness waits on it, and inter-broker traffic uses it)
and adds ``SASL_SSL`` (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN, server-authenticated TLS) and ``SSL``
(mutual TLS: a client certificate signed by the test CA is required).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libs.devstack.embedded import EmbeddedKafka, free_port

SCRAM_USERS = {"relay": "relay-secret-4d1f", "connector": "connector-secret-9a7c"}
PLAIN_USERS = {"plain-user": "plain-secret-2b8e"}
CLIENT_KEY_PASSWORD = "client-key-password-55"


@dataclass(frozen=True)
class Issued:
    certificate: Path
    key: Path


@dataclass(frozen=True)
class LocalCa:
    """A self-signed CA that issues certificates into ``folder``."""

    folder: Path
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def path(self) -> Path:
        return self.folder / "ca.pem"

    @classmethod
    def create(cls, folder: Path, common_name: str = "customer-profile test CA") -> LocalCa:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        folder.mkdir(parents=True, exist_ok=True)
        ca = cls(folder, key, certificate)
        ca.path.write_text(ca.pem, encoding="utf-8")
        return ca

    def issue(
        self, name: str, *, hosts: tuple[str, ...] = (), client: bool = False, key_password: str | None = None
    ) -> tuple[Issued, str, str]:
        """A certificate for ``hosts`` (server) or a client one; its files and its PEM chain and key (PKCS#8)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        certificate = builder.sign(self.key, hashes.SHA256())
        chain = certificate.public_bytes(serialization.Encoding.PEM).decode() + self.pem
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(key_password.encode())
            if key_password
            else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode()
        files = Issued(self.folder / f"{name}.pem", self.folder / f"{name}.key")
        files.certificate.write_text(chain, encoding="utf-8")
        files.key.write_text(key_pem, encoding="utf-8")
        files.key.chmod(0o600)
        return files, chain, key_pem


@dataclass(frozen=True)
class SecuredBroker:
    broker: EmbeddedKafka
    ca: LocalCa
    sasl_ssl_port: int
    ssl_port: int
    client: Issued  # a client certificate for the mutual-TLS listener, its key encrypted

    @property
    def sasl_ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.ssl_port}"


def _property(pem: str) -> str:
    """A PEM block as one line of a Java properties file (``\\n`` is read back as a newline)."""
    return pem.strip().replace("\n", "\\n")


@contextlib.contextmanager
def secured_broker(folder: Path, log_file: Path | None = None) -> Iterator[SecuredBroker]:
    ca = LocalCa.create(folder / "tls")
    _, broker_chain, broker_key = ca.issue("kafka-broker", hosts=("127.0.0.1", "localhost"))
    client, _, _ = ca.issue("kafka-client", client=True, key_password=CLIENT_KEY_PASSWORD)
    sasl_ssl_port, ssl_port = free_port(), free_port()
    plain_users = " ".join(f'user_{name}="{password}"' for name, password in PLAIN_USERS.items())
    broker = EmbeddedKafka(
        log_file=log_file,
        listeners={"SASL_SSL": ("SASL_SSL", sasl_ssl_port), "SSL": ("SSL", ssl_port)},
        scram_users=SCRAM_USERS,
        config={
            # The broker's key and chain, and the CA it trusts for client certificates, inline (PEM).
            "ssl.keystore.type": "PEM",
            "ssl.keystore.certificate.chain": _property(broker_chain),
            "ssl.keystore.key": _property(broker_key),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.certificates": _property(ca.pem),
            "listener.name.ssl.ssl.client.auth": "required",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,SCRAM-SHA-256,PLAIN",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            "listener.name.sasl_ssl.plain.sasl.jaas.config": (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
            ),
        },
    )
    broker.start()
    try:
        yield SecuredBroker(broker, ca, sasl_ssl_port, ssl_port, client)
    finally:
        broker.stop()
