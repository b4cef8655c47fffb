"""The DB-API driver and the SQLAlchemy URL carry what ``unseen query``'s flags carry:
a key directory, voucher files and mTLS files, against holders that require vouchers
and a coordinator that requires client certificates (real gRPC on loopback)."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import pytest
import sqlalchemy
from sqlalchemy import text

import unseen
from tests.shards import write_shard
from unseen import dbapi
from unseen.engine.governance.access import Governance
from unseen.engine.governance.signing import SigningKey
from unseen.engine.governance.voucher import VoucherPolicy, issue
from unseen.engine.transport.tls import make_bundle
from unseen.nodes.coordinator import Coordinator, serve_coordinator
from unseen.nodes.holder import HolderNode, serve_holder

SCHEMA = [("g", "VARCHAR"), ("v", "BIGINT")]
SQL = "SELECT g, SUM(v) AS total, COUNT(*) AS n FROM t GROUP BY g ORDER BY g"


def _rows(i: int) -> list[tuple[str, int]]:
    return [("a", j + i) for j in range(10)] + [("b", 2 * j) for j in range(7)]


@pytest.fixture(scope="module")
def governed(tmp_path_factory, key):
    root = tmp_path_factory.mktemp("governed")
    files = make_bundle(
        root / "pki",
        [("h0", "holder"), ("h1", "holder"), ("coord", "coordinator"), ("alice", "analyst")],
    )
    issuer = SigningKey.generate()
    servers, addresses = [], []
    for i in range(2):
        node = HolderNode.quickstart(
            f"h{i}", {"t": write_shard(root / f"h{i}.parquet", SCHEMA, _rows(i))}
        )
        node.governance = Governance(
            f"h{i}",
            VoucherPolicy(required=True, trusted_issuers={issuer.key_id: issuer.public_key}),
        )
        server, port = serve_holder(node, "127.0.0.1:0", files[f"h{i}"])
        servers.append(server)
        addresses.append(f"localhost:{port}")
    coordinator = Coordinator.connect(addresses, tls=files["coord"])
    cserver, cport = serve_coordinator(coordinator, "127.0.0.1:0", files["coord"])
    until = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    voucher_file = root / "alice.vouchers"
    voucher_file.write_text(
        "\n".join(
            issue(
                issuer,
                grantee=key.key_id,
                holder=f"h{i}",
                scope={"t": {"g": ["group"], "v": ["aggregate"]}},
                purpose="test",
                not_after=until,
            ).encode()
            for i in range(2)
        )
        + "\n"
    )
    key_dir = root / "key"
    key.save(key_dir)
    yield f"localhost:{cport}", files["alice"], voucher_file, key_dir
    cserver.stop(None).wait()
    coordinator.close()
    for server in servers:
        server.stop(None).wait()


def _expected() -> list[tuple[str, int, int]]:
    pooled = _rows(0) + _rows(1)
    return [
        (g, sum(v for h, v in pooled if h == g), sum(1 for h, _ in pooled if h == g))
        for g in ("a", "b")
    ]


def test_key_dir_vouchers_and_tls_reach_the_holders(governed):
    address, tls, vouchers, key_dir = governed
    with unseen.connect(
        address,
        key=key_dir,
        vouchers=[vouchers],
        tls={"cert": tls.cert, "key": tls.key, "ca": tls.ca},
    ) as conn:
        cursor = conn.execute(SQL)
        assert cursor.fetchall() == _expected()
        assert sorted(cursor.meta["holders"]) == ["h0", "h1"]


def test_without_a_voucher_the_refusal_is_a_programming_error(governed):
    address, tls, _, key_dir = governed
    with (
        unseen.connect(address, key=key_dir, tls=(tls.cert, tls.key, tls.ca)) as conn,
        pytest.raises(dbapi.ProgrammingError) as refused,
    ):
        conn.execute(SQL)
    assert refused.value.grpc_code == "PERMISSION_DENIED"


def test_without_a_certificate_the_coordinator_is_unreachable(governed):
    address, _, vouchers, key_dir = governed
    with pytest.raises(dbapi.InterfaceError, match="plaintext"):
        unseen.connect(address.replace("localhost", "10.1.2.3"), key=key_dir, vouchers=vouchers)
    with (
        unseen.connect(address, key=key_dir, vouchers=vouchers, timeout=5) as conn,
        pytest.raises(dbapi.OperationalError),
    ):
        conn.execute(SQL)


def test_the_sqlalchemy_url_carries_the_same_files(governed):
    sqlalchemy.dialects.registry.register("unseen", "unseen.sqlalchemy", "UnseenDialect")
    address, tls, vouchers, key_dir = governed
    options = urlencode(
        {
            "key": key_dir,
            "voucher": vouchers,
            "tls_cert": tls.cert,
            "tls_key": tls.key,
            "tls_ca": tls.ca,
            "timeout": 30,
        }
    )
    engine = sqlalchemy.create_engine(f"unseen://{address}?{options}")
    try:
        with engine.connect() as connection:
            assert [tuple(r) for r in connection.execute(text(SQL))] == _expected()
    finally:
        engine.dispose()
