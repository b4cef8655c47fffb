"""Mutual TLS: a development CA, node and analyst certificates, gRPC credentials.

``unseen certs`` writes a CA and one certificate per party. Every server
requires a client certificate signed by the CA, and every client checks the
server's. A certificate's common name is the party's name; its
organisational unit says its role (``holder``, ``coordinator``, ``analyst``,
``supervisor``). The coordinator forwards the analyst's certificate name to
holders (gRPC metadata), and a holder believes that name only when the
caller's own certificate says it is a coordinator — which is how a voucher's
``grantee.subject`` binds to the analyst's certificate.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from unseen.engine.errors import ConfigError
from unseen.engine.governance.signing import write_atomic

__all__ = [
    "ANALYST_SUBJECT_HEADER",
    "ROLES",
    "Caller",
    "TlsFiles",
    "caller",
    "caller_identity",
    "certificate_identity",
    "channel_credentials",
    "is_loopback",
    "make_bundle",
    "name_identity",
    "server_credentials",
]

ROLES = ("holder", "coordinator", "analyst", "supervisor")
ANALYST_SUBJECT_HEADER = "unseen-analyst-subject"
_VALIDITY = dt.timedelta(days=365)


@dataclass(frozen=True)
class TlsFiles:
    """A party's certificate and key, and the CA it trusts."""

    cert: Path
    key: Path
    ca: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        try:
            return self.cert.read_bytes(), self.key.read_bytes(), self.ca.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read TLS file {exc.filename}: {exc.strerror}") from exc


def is_loopback(address: str) -> bool:
    """Whether ``HOST:PORT`` names this machine only (plaintext is allowed there)."""
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """Server side of mTLS: present our certificate, require a CA-signed client one."""
    cert, key, ca = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    """Client side of mTLS: check the server against the CA, present our certificate."""
    cert, key, ca = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


@dataclass(frozen=True)
class Caller:
    """Who is on the other end of a call, as its verified certificate says.

    ``authenticated`` is False on a plaintext channel (loopback quick-start),
    where nothing about the caller is known.
    """

    authenticated: bool
    name: str | None = None
    role: str | None = None


def certificate_identity(pem: bytes) -> tuple[str | None, str | None]:
    """The (common name, role) an X.509 certificate states, read as attributes.

    Each is the value of the single CN / OU attribute of the subject; a
    certificate with none or several of one gets None for it (an ambiguous
    role is no role). Attribute values are never split or re-parsed: an
    organisation named ``evil,OU=coordinator`` is one O attribute, not a role.
    """
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None, None
    return name_identity(cert.subject)


def name_identity(subject: x509.Name) -> tuple[str | None, str | None]:
    """The (common name, role) of a certificate subject: :func:`certificate_identity`
    for a certificate already loaded (and verified) by the caller."""
    names = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    roles = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    name = names[0].value if len(names) == 1 else None
    role = roles[0].value if len(roles) == 1 else None
    return (
        name if isinstance(name, str) else None,
        role if isinstance(role, str) and role in ROLES else None,
    )


def caller(context: grpc.ServicerContext) -> Caller:
    """The caller of a gRPC call, from the peer certificate grpc verified against our CA."""
    auth = context.auth_context()
    pems = auth.get("x509_pem_cert") or []
    if not pems:
        return Caller(authenticated=False)
    name, role = certificate_identity(pems[0])
    return Caller(True, name, role)


def caller_identity(context: grpc.ServicerContext) -> tuple[str | None, str | None]:
    """The (common name, role) of the caller's verified certificate, if any."""
    who = caller(context)
    return who.name, who.role


def _name(common: str, role: str | None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "unseen")]
    if role:
        parts.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role))
    parts.append(x509.NameAttribute(NameOID.COMMON_NAME, common))
    return x509.Name(parts)


def _sans(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for host in hosts:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            entries.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(entries)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, 0o600)


def make_bundle(
    out: Path,
    parties: Sequence[tuple[str, str]],
    hosts: Sequence[str] = ("localhost", "127.0.0.1", "::1"),
) -> dict[str, TlsFiles]:
    """A development CA and a certificate per ``(name, role)``; returns their files.

    Every certificate serves and authenticates as a client (a coordinator is
    both), with ``hosts`` as subject alternative names. Keys are P-256, 0600.
    """
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("unseen development CA", None)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    _write_key(out / "ca.key", ca_key)
    write_atomic(out / "ca.crt", ca_cert.public_bytes(serialization.Encoding.PEM), 0o644)
    files = {}
    for name, role in parties:
        if role not in ROLES:
            raise ConfigError(f"unknown role {role!r} for {name} (roles: {', '.join(ROLES)})")
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name, role))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_sans([name, *hosts]), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_key(out / f"{name}.key", key)
        write_atomic(out / f"{name}.crt", cert.public_bytes(serialization.Encoding.PEM), 0o644)
        files[name] = TlsFiles(out / f"{name}.crt", out / f"{name}.key", out / "ca.crt")
    return files
