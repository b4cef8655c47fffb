"""A governed holder behind mutual TLS, and the certificates attackers bring to it.

Shared by the attack tests that call a holder directly: a development CA from
``unseen certs``' own code, a holder requiring vouchers and keeping a ledger,
and a helper that has the federation's CA sign any subject an attacker asks
for (a CA that signs what it is sent is the attacker's best case).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.shards import write_shard
from unseen.engine.crypto.keys import AnalystKey
from unseen.engine.governance.access import Governance
from unseen.engine.governance.ledger import Ledger, LedgerEntry, read_ledger
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import VoucherPolicy, issue
from unseen.engine.query.catalog import Catalog
from unseen.engine.query.sql import compile_sql
from unseen.engine.transport import serde
from unseen.engine.transport.rpc import create_channel
from unseen.engine.transport.tls import ANALYST_SUBJECT_HEADER, TlsFiles, make_bundle
from unseen.nodes.holder import HolderNode, serve_holder
from unseen.v1 import holder_pb2_grpc, mask_pb2

__all__ = ["GovernedHolder", "ca_signed", "start_governed_holder"]

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]


def ca_signed(bundle: Path, name: str, subject: x509.Name) -> TlsFiles:
    """A certificate for ``subject`` signed by the bundle's CA, as ``make_bundle`` makes them."""
    ca_key = serialization.load_pem_private_key((bundle / "ca.key").read_bytes(), None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    ca_cert = x509.load_pem_x509_certificate((bundle / "ca.crt").read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (bundle / f"{name}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (bundle / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return TlsFiles(bundle / f"{name}.crt", bundle / f"{name}.key", bundle / "ca.crt")


@dataclass
class GovernedHolder:
    """One holder ``h0`` on loopback with mTLS, vouchers required and a ledger."""

    bundle: Path
    files: dict[str, TlsFiles]
    address: str
    node: HolderNode
    server: grpc.Server
    issuer: SigningKey
    ledger_path: Path

    def voucher(self, key: AnalystKey, subject: str) -> str:
        return issue(
            self.issuer,
            grantee=key.key_id,
            holder="h0",
            scope={"t": {"g": ["group"], "v": ["aggregate"]}},
            purpose="attack test",
            not_after=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1),
            grantee_subject=subject,
        ).encode()

    def aggregate(
        self,
        tls: TlsFiles,
        key: AnalystKey,
        sql: str,
        vouchers: Sequence[str],
        forwarded_subject: str | None = None,
    ) -> mask_pb2.PrepareAggregateReply:
        """Call the holder's round 1 (``PrepareAggregate``, the RPC that reads the data)
        straight, as an analyst with ``tls`` would."""
        catalog = Catalog("h0", tuple(self.node.tables.values()))
        plan = compile_sql(sql, catalog).plan
        metadata = ((ANALYST_SUBJECT_HEADER, forwarded_subject),) if forwarded_subject else ()
        with create_channel(self.address, tls) as channel:
            stub = holder_pb2_grpc.HolderStub(channel)
            stub.RegisterKey(serde.key_chunks(key.public), timeout=30)
            request = serde.aggregate_request(key.key_id, plan, vouchers, request_id="q-direct")
            reply: mask_pb2.PrepareAggregateReply = stub.PrepareAggregate(
                request, timeout=30, metadata=metadata
            )
            return reply

    def entries(self) -> tuple[LedgerEntry, ...]:
        return read_ledger(self.ledger_path).entries

    def close(self) -> None:
        self.server.stop(None).wait()
        ledger = self.node.gov.ledger
        if ledger is not None:
            ledger.close()
        self.node.pool.close()


def start_governed_holder(root: Path) -> GovernedHolder:
    bundle = root / "pki"
    files = make_bundle(bundle, [("h0", "holder"), ("coord", "coordinator"), ("alice", "analyst")])
    rows = [("a", j) for j in range(40)] + [("b", j) for j in range(40)]
    node = HolderNode.quickstart("h0", {"t": write_shard(root / "h0.parquet", SCHEMA, rows)})
    issuer = SigningKey.generate()
    ledger_path = root / "h0.ledger"
    node.governance = Governance(
        "h0",
        VoucherPolicy(required=True, trusted_issuers={issuer.key_id: issuer.public_key}),
        Ledger(ledger_path, "h0", SigningKey.generate()),
    )
    server, port = serve_holder(node, "127.0.0.1:0", files["h0"])
    return GovernedHolder(bundle, files, f"localhost:{port}", node, server, issuer, ledger_path)
