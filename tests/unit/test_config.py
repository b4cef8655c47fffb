"""Node config files: parsing, deny-by-default policies, and errors that name the key."""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path

import pytest

from unseen.engine.config import (
    AUTO,
    ColumnPolicy,
    NodeConfig,
    TableConfig,
    load_config,
    load_tables,
    parse_config,
    table_info,
)
from unseen.engine.errors import ConfigError
from unseen.engine.governance.ledger import Ledger
from unseen.engine.governance.revocation import RevocationFile, revoke
from unseen.engine.governance.signing import SigningKey
from unseen.engine.query.catalog import TableInfo
from unseen.engine.query.types import SqlType

INTEGER, VARCHAR, FLOAT = SqlType("INTEGER"), SqlType("VARCHAR"), SqlType("FLOAT")
SCHEMA = [
    ("uscc", VARCHAR),
    ("city", VARCHAR),
    ("year", INTEGER),
    ("amount", SqlType("DECIMAL", 12, 2)),
    ("rate", FLOAT),
    ("blob", SqlType("OTHER")),
]


@pytest.fixture
def keys(tmp_path) -> dict[str, SigningKey]:
    exchange, holder = SigningKey.generate(), SigningKey.generate()
    exchange.save(tmp_path / "keys" / "exchange.key")
    holder.save(tmp_path / "keys" / "tax.key")
    return {"exchange": exchange, "holder": holder}


@pytest.fixture
def example(tmp_path, keys) -> Path:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "tax.csv").write_text(
        "uscc,city,year,amount,rate\n"
        "91A,hangzhou,2024,10.50,0.1\n"
        "91B,ningbo,2025,20.25,0.2\n"
        "91C,hangzhou,2025,30.00,0.3\n"
    )
    owner = SigningKey.generate().public_key.to_text()
    path = tmp_path / "node.toml"
    path.write_text(
        f"""
[node]
name = "tax"
listen = "127.0.0.1:7101"

[governance]
trusted_issuers = ["keys/exchange.key.pub", {{ name = "owner", key = "{owner}" }}]
ledger = "state/tax.ledger"
signing_key = "keys/tax.key"
revocations = "state/revoked.json"

[tables.tax]
source = "data/tax.csv"
k = 3

[tables.tax.columns]
uscc = {{ uses = ["entity", "filter"] }}
city = {{ uses = ["filter", "group"], domain = "auto" }}
year = {{ uses = ["filter", "group"], domain = [2024, 2025, 2026] }}
amount = {{ uses = ["aggregate", "score"] }}
"""
    )
    return path


def test_the_example_config_parses(example, keys, tmp_path):
    config = load_config(example)
    assert (config.name, config.listen, config.path) == ("tax", "127.0.0.1:7101", example)
    gov = config.governance
    assert gov.require_vouchers is True  # the default with a config file
    assert keys["exchange"].key_id in gov.trusted_issuers
    assert sorted(gov.issuer_names.values()) == sorted(["owner", keys["exchange"].key_id[:16]])
    assert gov.ledger == tmp_path / "state" / "tax.ledger"
    assert gov.signing_key == tmp_path / "keys" / "tax.key"
    table = config.tables["tax"]
    assert (table.name, table.source, table.k) == ("tax", tmp_path / "data" / "tax.csv", 3)
    assert table.columns["city"].domain == AUTO
    assert table.columns["year"].domain == (2024, 2025, 2026)
    assert table.policy("rate") == ColumnPolicy("rate", frozenset())
    assert config.tls.cert is None
    assert config.override(name="tax-2").name == "tax-2"
    assert config.override(listen="0.0.0.0:1").listen == "0.0.0.0:1"
    assert config.override().listen == "127.0.0.1:7101"


def test_the_example_builds_a_deny_by_default_catalog(example):
    sources, infos = load_tables(load_config(example))
    assert set(sources) == set(infos) == {"tax"}
    info = infos["tax"]
    assert isinstance(info, TableInfo) and info.min_group_size == 3
    assert info.column("uscc").uses == {"entity", "filter"}
    assert info.column("city").domain == ("hangzhou", "ningbo")
    assert info.column("year").domain == (2024, 2025, 2026)
    assert info.column("amount").uses == {"aggregate", "score"}
    assert info.column("amount").domain is None
    assert info.column("rate").uses == frozenset()  # not mentioned: no uses


def test_governance_helpers_open_the_ledger_and_policy(example, keys):
    gov = load_config(example).governance
    policy = gov.voucher_policy()
    assert policy.required and isinstance(policy.revoked, RevocationFile)
    gov.revocations.parent.mkdir(parents=True, exist_ok=True)
    revoke(gov.revocations, "v-9", "withdrawn")
    assert "v-9" in policy.revoked
    ledger = gov.open_ledger("tax")
    assert isinstance(ledger, Ledger) and ledger.key_id == keys["holder"].key_id
    ledger.close()


def test_a_minimal_config_without_vouchers():
    config = parse_config({"governance": {"require_vouchers": False}})
    assert config.tables == {} and config.name is None
    assert config.governance.open_ledger("x") is None
    assert not config.governance.voucher_policy().required


def test_min_holders_defaults_to_two_and_may_be_raised():
    assert parse_config({"governance": {"require_vouchers": False}}).min_holders == 2
    raised = parse_config({"governance": {"require_vouchers": False}, "node": {"min_holders": 3}})
    assert raised.min_holders == 3


def test_table_defaults_and_default_uses():
    table = TableConfig(
        "t",
        None,
        default_uses=frozenset({"filter", "aggregate"}),
        columns={"city": ColumnPolicy("City", frozenset({"group"}), ("b", "a"))},
    )
    info = table_info(table, SCHEMA)
    assert info.min_group_size == 5 and info.dominance_p == 10
    tightened = parse_config(
        {"governance": {"require_vouchers": False}, "tables": {"t": {"p": 25}}}
    )
    assert table_info(tightened.tables["t"], SCHEMA).dominance_p == 25
    columns = {"rate": {"uses": ["aggregate"], "p": 30}}
    per_column = parse_config(
        {"governance": {"require_vouchers": False}, "tables": {"t": {"columns": columns}}}
    )
    assert table_info(per_column.tables["t"], SCHEMA).column("rate").dominance_p == 30
    assert info.column("city").uses == {"group"} and info.column("city").domain == ("a", "b")
    assert info.column("rate").uses == {"filter", "aggregate"}
    assert info.column("blob").uses == frozenset()  # a type unseen cannot read gets nothing


def test_domains_are_coerced_to_the_column_type():
    columns = {
        "year": ColumnPolicy("year", frozenset({"group"}), (2025, 2024)),
        "amount": ColumnPolicy("amount", frozenset({"group"}), ("1.50", 2, 3.25)),
        "rate": ColumnPolicy("rate", frozenset({"group"}), (1, 0.5)),
    }
    info = table_info(TableConfig("t", None, columns=columns), SCHEMA)
    assert info.column("year").domain == (2024, 2025)
    assert info.column("amount").domain == (Decimal("1.50"), Decimal(2), Decimal("3.25"))
    assert info.column("rate").domain == (0.5, 1.0)
    dates = [("d", SqlType("DATE")), ("ts", SqlType("TIMESTAMP")), ("b", SqlType("BOOLEAN"))]
    columns = {
        "d": ColumnPolicy("d", frozenset({"group"}), (dt.date(2025, 1, 1), "2025-02-01")),
        "ts": ColumnPolicy("ts", frozenset({"group"}), (dt.date(2025, 1, 1),)),
        "b": ColumnPolicy("b", frozenset({"group"}), (True, False)),
    }
    info = table_info(TableConfig("t", None, columns=columns), dates)
    assert info.column("d").domain == (dt.date(2025, 1, 1), dt.date(2025, 2, 1))
    assert info.column("ts").domain == (dt.datetime(2025, 1, 1),)
    assert info.column("b").domain == (False, True)


def test_auto_domains_from_a_mapping_or_a_callable():
    table = TableConfig(
        "t",
        None,
        max_auto_domain=2,
        columns={"city": ColumnPolicy("city", frozenset({"group"}), AUTO)},
    )
    assert table_info(table, SCHEMA, {"city": ["b", "a", "b"]}).column("city").domain == (
        "a",
        "b",
    )
    calls = []

    def distinct(column: str, limit: int):
        calls.append((column, limit))
        return ["x"]

    assert table_info(table, SCHEMA, distinct).column("city").domain == ("x",)
    assert calls == [("city", 2)]
    with pytest.raises(ConfigError, match=r"config tables\.t\.columns\.city\.domain: column city "):
        table_info(table, SCHEMA, {"city": ["a", "b", "c"]})
    with pytest.raises(ConfigError, match="more than 2 distinct values"):
        table_info(table, SCHEMA, lambda c, n: None)
    with pytest.raises(ConfigError, match='"auto" needs the data'):
        table_info(table, SCHEMA)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        (
            {"amout": ColumnPolicy("amout", frozenset())},
            "config tables.t.columns.amout: table t has no such column (it has: uscc, city",
        ),
        (
            {"year": ColumnPolicy("year", frozenset({"group"}), (2024, "x"))},
            "config tables.t.columns.year.domain[1]: 'x' is not a INTEGER value",
        ),
        (
            {"year": ColumnPolicy("year", frozenset({"group"}), (True,))},
            "config tables.t.columns.year.domain[0]: True is not a INTEGER value",
        ),
        (
            {"city": ColumnPolicy("city", frozenset({"group"}), (1,))},
            "config tables.t.columns.city.domain[0]: 1 is not a VARCHAR value",
        ),
        (
            {"amount": ColumnPolicy("amount", frozenset({"group"}), ("ten",))},
            "config tables.t.columns.amount.domain[0]: 'ten' is not a DECIMAL(12,2) value",
        ),
        (
            {"blob": ColumnPolicy("blob", frozenset({"filter"}))},
            "config tables.t.columns.blob.uses: column blob has a type unseen cannot read",
        ),
    ],
)
def test_table_info_errors_name_the_key(columns, message):
    with pytest.raises(ConfigError) as info:
        table_info(TableConfig("t", None, columns=columns), SCHEMA)
    assert str(info.value).startswith(message)


NO_VOUCHERS = "[governance]\nrequire_vouchers = false\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            NO_VOUCHERS + '[tables.loans.columns.amount]\nuses = ["sum"]',
            "config tables.loans.columns.amount.uses: unknown use 'sum' (allowed: filter, group, "
            "aggregate, score, entity)",
        ),
        (NO_VOUCHERS + "[tabels.loans]", "config tabels: unknown key (allowed: "),
        (NO_VOUCHERS + "[tables.loans]\nk = 0", "config tables.loans.k: expected an integer"),
        (NO_VOUCHERS + '[tables.loans]\nk = "5"', "config tables.loans.k: expected an integer"),
        (NO_VOUCHERS + "[tables.loans]\nmin_k = 5", "config tables.loans.min_k: unknown key"),
        (NO_VOUCHERS + "[tables.loans.columns.amount]", "config tables.loans.columns.amount: "),
        (
            NO_VOUCHERS + '[tables.loans.columns.amount]\nuses = "filter"',
            "config tables.loans.columns.amount.uses: expected a list of uses",
        ),
        (
            NO_VOUCHERS + "[tables.loans.columns.amount]\nuses = [1]",
            "config tables.loans.columns.amount.uses[0]: expected a use name",
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns.city]\nuses = ["filter"]\ndomain = ["a"]',
            "config tables.loans.columns.city.domain: a published domain needs the 'group' use",
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns.city]\nuses = ["group"]\ndomain = "all"',
            'config tables.loans.columns.city.domain: expected a list of values or "auto"',
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns.city]\nuses = ["group"]\ndomain = []',
            "config tables.loans.columns.city.domain: an empty domain",
        ),
        (
            NO_VOUCHERS
            + '[tables.loans.columns.city]\nuses = ["group"]\ndomain = "auto"\n'
            + "publish_domain = false",
            "config tables.loans.columns.city.domain: a domain is given but publish_domain",
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns.city]\nuses = ["filter"]\npublish_domain = true',
            "config tables.loans.columns.city.publish_domain: a published domain needs",
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns."a b"]\nuses = ["sum"]',
            'config tables.loans.columns."a b".uses: unknown use',
        ),
        (
            NO_VOUCHERS + "[tables.loans.columns]\nCity = { uses = [] }\ncity = { uses = [] }",
            "config tables.loans.columns.city: names a column twice",
        ),
        (NO_VOUCHERS + "[tables.Loans]\n[tables.loans]", "config tables.loans: names a table"),
        ("tables = 3\n" + NO_VOUCHERS, "config tables: expected a table"),
        (NO_VOUCHERS + '[tables.loans]\nsource = "nope.csv"', "config tables.loans.source: "),
        ("[governance]\nrequire_vouchers = 1", "config governance.require_vouchers: expected true"),
        ("", "config governance.trusted_issuers: vouchers are required but no issuer is trusted"),
        (
            '[governance]\ntrusted_issuers = ["ed25519:AAAA"]',
            "config governance.trusted_issuers[0]: an Ed25519 public key has 32 bytes, not 3",
        ),
        (
            '[governance]\ntrusted_issuers = ["missing.pub"]',
            "config governance.trusted_issuers[0]: ",
        ),
        (
            '[governance]\ntrusted_issuers = [{ name = "x" }]',
            "config governance.trusted_issuers[0]: missing key 'key'",
        ),
        (
            '[governance]\ntrusted_issuers = [{ key = "ed25519:AAAA", nmae = "x" }]',
            "config governance.trusted_issuers[0].nmae: unknown key",
        ),
        ('[governance]\ntrusted_issuers = "x"', "config governance.trusted_issuers: expected a"),
        (NO_VOUCHERS + 'ledger = "l.db"', "config governance.signing_key: a ledger needs both"),
        (NO_VOUCHERS + '[tls]\ncert = "node.toml"', "config tls: cert and key go together"),
        (NO_VOUCHERS + '[tls]\nca = "x"', "config tls.ca: unknown key"),
        (NO_VOUCHERS + '[node]\nname = ""', "config node.name: expected a non-empty string"),
        (NO_VOUCHERS + "[node]\nport = 1", "config node.port: unknown key"),
        (NO_VOUCHERS + "[node]\nmin_holders = 1", "config node.min_holders: is at least 2"),
        (
            NO_VOUCHERS + "[tables.loans]\np = 5",
            "config tables.loans.p: must be between 10 (the default) and 100",
        ),
        (NO_VOUCHERS + '[tables.loans]\np = "x"', "config tables.loans.p: must be a number"),
        (
            NO_VOUCHERS + "[tables.loans.columns]\nrate = { uses = [], p = 1 }",
            "config tables.loans.columns.rate.p: must be between 10",
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns]\nrate = { uses = ["score"], score_bound = 0 }',
            "config tables.loans.columns.rate.score_bound: expected a finite bound above zero",
        ),
        (
            NO_VOUCHERS + '[tables.loans.columns]\nrate = { uses = ["score"], score_bound = "x" }',
            "config tables.loans.columns.rate.score_bound: expected a number",
        ),
        (
            NO_VOUCHERS
            + '[tables.loans.columns]\nrate = { uses = ["score"], score_sum_bound = inf }',
            "config tables.loans.columns.rate.score_sum_bound: expected a finite bound",
        ),
        (
            NO_VOUCHERS
            + '[tables.loans.columns]\nrate = { uses = ["aggregate"], score_bound = 9 }',
            "config tables.loans.columns.rate: a score bound needs the 'score' use",
        ),
    ],
)
def test_invalid_configs_name_the_key(tmp_path, text, message):
    path = tmp_path / "node.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_trusted_issuers_must_be_distinct_and_keys_exist(tmp_path, keys):
    text = keys["exchange"].public_key.to_text()
    with pytest.raises(ConfigError, match=r"trusted_issuers\[1\]: issuer key .* is listed twice"):
        parse_config({"governance": {"trusted_issuers": [text, text]}}, tmp_path)
    with pytest.raises(ConfigError, match=r"config governance\.ledger: vouchers are required"):
        parse_config({"governance": {"trusted_issuers": [text]}}, tmp_path)
    with pytest.raises(ConfigError, match=r"config governance\.signing_key: .* does not exist"):
        parse_config(
            {"governance": {"trusted_issuers": [text], "ledger": "l", "signing_key": "k"}},
            tmp_path,
        )


def test_file_level_errors(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    (tmp_path / "bad.toml").write_text("[node\nname = 1")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_config(tmp_path / "bad.toml")


def test_table_flags_override_sources_but_cannot_add_tables(example, tmp_path):
    config = load_config(example)
    other = tmp_path / "other.csv"
    other.write_text("uscc,city,year,amount,rate\n91Z,wenzhou,2026,1.00,0.5\n")
    _, infos = load_tables(config, {"TAX": other})
    assert infos["tax"].column("city").domain == ("wenzhou",)
    with pytest.raises(ConfigError, match=r"table loans is given with --table but the config"):
        load_tables(config, {"loans": other})
    sourceless = NodeConfig(
        None,
        None,
        None,
        {"t": TableConfig("t", None)},
        config.governance,
        config.tls,
    )
    with pytest.raises(ConfigError, match=r"config tables.t.source: no source given"):
        load_tables(sourceless)


def test_the_governance_doc_example_is_a_valid_config(tmp_path):
    doc = (Path(__file__).resolve().parents[2] / "docs" / "governance.md").read_text()
    (tmp_path / "node.toml").write_text(doc.split("```toml\n", 1)[1].split("```", 1)[0])
    for name in ("data/tax.parquet", "tls/tax.crt", "tls/tax.key", "tls/ca.crt"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    SigningKey.generate().save(tmp_path / "keys" / "tax.key")
    SigningKey.generate().public_key.save(tmp_path / "keys" / "exchange.pub")
    assert (tmp_path / "keys" / "tax.key").stat().st_mode & 0o777 == 0o600
    config = load_config(tmp_path / "node.toml")
    assert config.name == "tax" and len(config.governance.trusted_issuers) == 2
    assert "owner" in config.governance.issuer_names.values()
    assert config.tls.client_ca == tmp_path / "tls" / "ca.crt"
    columns = config.tables["tax"].columns
    assert columns["revenue"].uses == {"aggregate", "score"}
    assert columns["industry"].domain is None and columns["city"].domain == AUTO
    assert os.path.basename(config.governance.ledger) == "tax.ledger"
