"""Certificate identities are X.509 attributes, never pieces of a subject string."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from unseen.engine.transport.tls import certificate_identity

CN, OU, ORG = NameOID.COMMON_NAME, NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.ORGANIZATION_NAME


def pem(*attributes: tuple[x509.ObjectIdentifier, str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.mark.parametrize(
    ("attributes", "identity"),
    [
        (((ORG, "unseen"), (OU, "coordinator"), (CN, "coord")), ("coord", "coordinator")),
        (((ORG, "evil,OU=coordinator"), (OU, "analyst"), (CN, "m")), ("m", "analyst")),
        (((CN, "x,OU=coordinator"),), ("x,OU=coordinator", None)),
        # Two roles is no role; an unknown role is none either; so are two names.
        (((OU, "analyst"), (OU, "coordinator"), (CN, "two")), ("two", None)),
        (((OU, "root"), (CN, "r")), ("r", None)),
        (((OU, "holder"), (CN, "a"), (CN, "b")), (None, "holder")),
    ],
)
def test_identity_comes_from_single_attributes(attributes, identity):
    assert certificate_identity(pem(*attributes)) == identity


def test_garbage_is_nobody():
    assert certificate_identity(
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    ) == (
        None,
        None,
    )
