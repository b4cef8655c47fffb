"""The holder node's config file (TOML): served tables, column policies, vouchers, ledger, TLS.

``unseen node serve --config FILE`` reads it with :func:`load_config`. A config
file narrows the quick-start defaults: a column gets exactly the uses listed
for it (deny by default — a column the file does not mention gets the
table's ``default_uses``, which default to none), a group domain is published
only when the file asks for it, and vouchers are required unless the file
says otherwise. Every mistake is a :class:`ConfigError` naming the key path,
e.g. ``config tables.loans.columns.amount.uses: unknown use 'sum'``.

Format (relative paths are relative to the config file's directory)::

    [node]                          # optional; --name / --listen override
    name = "tax"
    listen = "0.0.0.0:7101"
    min_holders = 3                 # default 2: holders in a masked aggregate, at least

    [governance]
    require_vouchers = true         # default true
    trusted_issuers = ["keys/exchange.pub", "ed25519:<base64url>",
                       { name = "owner", key = "keys/owner.pub" }]
    ledger = "state/tax.ledger"     # needed when vouchers are required
    signing_key = "keys/tax.key"    # the holder's Ed25519 key (mode 0600)
    revocations = "state/revoked.json"

    [tls]                           # optional; for the mTLS hardening step
    cert = "tls/tax.crt"
    key = "tls/tax.key"
    client_ca = "tls/ca.crt"

    [tables.tax]
    source = "data/tax.parquet"     # optional when --table tax=PATH gives it
    k = 5                           # minimum group size, default 5
    p = 10                          # p% dominance rule, default 10; may only be raised
                                    # (a column may raise it again: revenue = { ..., p = 20 })
    default_uses = []               # uses of columns not listed, default none
    max_auto_domain = 100           # bound on a domain = "auto"
    min_score_batch = 1             # distinct entities a score request must name

    [tables.tax.dp]                 # optional: differential privacy (docs/differential-privacy.md)
    unit = "uscc"                   # the privacy unit column
    max_rows = 1                    # rows per unit per query (the rest dropped)
    rho = 0.5                       # zCDP cost of one query, charged to the voucher's budget
    honest_holders = 1              # holders assumed to add their noise share (default 1)
    unit_holders = 1                # holders at which one unit may have rows (default 1)
    bounds = { revenue = [0, 1000000] }   # public clamping bounds per aggregated column

    [tables.tax.columns]
    uscc = { uses = ["entity", "filter"] }
    city = { uses = ["filter", "group"], domain = "auto" }
    month = { uses = ["group"], domain = ["2025-01", "2025-02"] }
    revenue = { uses = ["aggregate", "score"], score_bound = 1e9, score_sum_bound = 1e10 }

``score_bound`` and ``score_sum_bound`` are public bounds on a column's score
features (unseen.engine.data.scaling): the largest ``|value|`` of a row (plain,
``avg``, ``min``, ``max`` features) and of one entity's ``sum``. A feature the
policy bounds is scaled by the declared bound, never by data, and values beyond
it are clipped to it; a feature it does not bound is scaled by its whole-table bound.

A group domain is published when ``domain`` is given (a list of values, or
``"auto"``: the column's distinct values, read from the data when the node
starts) or when ``publish_domain = true`` (which implies ``"auto"``);
``publish_domain = false`` keeps it private, and then the column can only be
grouped by a query that supplies the domain (``WHERE city IN (...)``).
Publishing a domain publishes data values: it is opt-in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path
from types import MappingProxyType
from typing import Any

from unseen.engine.data.source import TableSource, open_source
from unseen.engine.data.warehouses.location import Location, is_url
from unseen.engine.errors import ConfigError
from unseen.engine.governance.ledger import Ledger
from unseen.engine.governance.policy import DEFAULT_K, DEFAULT_MAX_DOMAIN, DEFAULT_MIN_SCORE_BATCH
from unseen.engine.governance.revocation import RevocationFile
from unseen.engine.governance.signing import PublicKey, SigningKey
from unseen.engine.governance.voucher import VoucherPolicy
from unseen.engine.privacy.dp_policy import DpPolicy
from unseen.engine.privacy.suppression import DEFAULT_P
from unseen.engine.query.catalog import USES, ColumnInfo, TableInfo, sort_domain
from unseen.engine.query.expr import LiteralValue
from unseen.engine.query.types import SqlType, normalize_value

__all__ = [
    "AUTO",
    "ColumnPolicy",
    "CoordinatorConfig",
    "DistinctValues",
    "GovernanceConfig",
    "NodeConfig",
    "TableConfig",
    "TlsConfig",
    "load_config",
    "load_coordinator_config",
    "load_tables",
    "parse_config",
    "table_info",
]

AUTO = "auto"

DistinctValues = Callable[[str, int], Sequence[Any] | None] | Mapping[str, Sequence[Any]]
"""How :func:`table_info` gets an ``"auto"`` domain: ``TableSource.distinct_values``
(column, limit → values, or None beyond the limit), or values per column name."""

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_KEYS = {
    "": {"node", "governance", "tls", "tables"},
    "node": {"name", "listen", "min_holders"},
    "governance": {
        "require_vouchers",
        "trusted_issuers",
        "supervisors",
        "ledger",
        "signing_key",
        "revocations",
        # consent (issue 16): registrations, subject keys, consents
        "require_registration",
        "require_consents",
        "subject_registry",
        "consents",
    },
    "tls": {"cert", "key", "client_ca"},
    "table": {
        "source",
        "k",
        "default_uses",
        "max_auto_domain",
        "columns",
        "min_score_batch",
        "registration",
        "dp",
        "p",
    },
    "dp": {"unit", "max_rows", "rho", "honest_holders", "unit_holders", "bounds"},
    "column": {"uses", "domain", "publish_domain", "p", "score_bound", "score_sum_bound"},
}


def _key(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    part = key if _BARE_KEY.fullmatch(key) else json.dumps(key, ensure_ascii=False)
    return f"{path}.{part}" if path else part


def _error(path: str, message: str) -> ConfigError:
    return ConfigError(f"config {path or '(top level)'}: {message}")


def _section(value: Any, path: str) -> Mapping[str, Any]:
    """A table whose keys are names the user chooses (tables, columns)."""
    if not isinstance(value, dict):
        raise _error(path, f"expected a table, got {_kind(value)}")
    return value


def _table(value: Any, path: str, allowed: set[str]) -> Mapping[str, Any]:
    """A table whose keys are fixed by the format: any other key is refused."""
    table = _section(value, path)
    for key in table:
        if key not in allowed:
            raise _error(_key(path, key), f"unknown key (allowed: {', '.join(sorted(allowed))})")
    return table


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _error(path, f"expected a non-empty string, got {_kind(value)}")
    if any(ord(c) < 32 for c in value):
        raise _error(path, "must be one line")
    return value


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise _error(path, f"expected true or false, got {_kind(value)}")
    return value


def _positive(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _error(path, f"expected an integer of at least 1, got {_kind(value)}")
    return value


def _path(value: Any, path: str, base: Path, must_exist: bool = False) -> Path:
    resolved = Path(_text(value, path)).expanduser()
    if not resolved.is_absolute():
        resolved = base / resolved
    if must_exist and not resolved.exists():
        raise _error(path, f"{resolved} does not exist")
    return resolved


def _uses(value: Any, path: str) -> frozenset[str]:
    if not isinstance(value, list):
        raise _error(path, f"expected a list of uses, got {_kind(value)}")
    for i, use in enumerate(value):
        if not isinstance(use, str):
            raise _error(_key(path, i), f"expected a use name, got {_kind(use)}")
        if use not in USES:
            raise _error(path, f"unknown use {use!r} (allowed: {', '.join(USES)})")
    return frozenset(value)


@dataclass(frozen=True)
class ColumnPolicy:
    """What one column may be used for, and its published group domain.

    ``domain`` is None (not published), :data:`AUTO` (the distinct values,
    read at start-up), or the explicit values as the TOML file gave them
    (coerced to the column's type by :func:`table_info`).
    """

    name: str
    uses: frozenset[str]
    domain: tuple[Any, ...] | str | None = None
    p: float | None = None  # a tighter p% dominance rule for measures reading this column
    score_bound: float | None = None  # declared bound on |a row's value| in a score feature
    score_sum_bound: float | None = None  # declared bound on |one entity's sum|


@dataclass(frozen=True)
class TableConfig:
    """A served table: where its rows are and its policy. ``columns`` is keyed lower-case."""

    name: str
    source: Location | None
    k: int = DEFAULT_K
    default_uses: frozenset[str] = frozenset()
    max_auto_domain: int = DEFAULT_MAX_DOMAIN
    columns: Mapping[str, ColumnPolicy] = field(default_factory=lambda: MappingProxyType({}))
    min_score_batch: int = DEFAULT_MIN_SCORE_BATCH
    # The exchange-signed asset registration of this table (unseen.engine.governance.asset).
    registration: Path | None = None
    dp: DpPolicy | None = None
    p: float = DEFAULT_P

    def policy(self, column: str) -> ColumnPolicy:
        """The column's policy: its own entry, else the table's default uses."""
        found = self.columns.get(column.lower())
        return found if found is not None else ColumnPolicy(column, self.default_uses)


@dataclass(frozen=True)
class GovernanceConfig:
    """Vouchers, ledger and revocations of one holder."""

    require_vouchers: bool = True
    trusted_issuers: Mapping[str, PublicKey] = field(default_factory=lambda: MappingProxyType({}))
    issuer_names: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    ledger: Path | None = None
    signing_key: Path | None = None
    revocations: Path | None = None
    # Supervisor keys allowed to fetch ledger ranges over RPC.
    supervisors: Mapping[str, PublicKey] = field(default_factory=lambda: MappingProxyType({}))
    # Issue 16: a table is served only with a valid registration; entity-scoped
    # requests need the subjects' consents (keys from the exchange-signed registry).
    require_registration: bool = False
    require_consents: bool = False
    subject_registry: Path | None = None
    consents: Path | None = None

    def voucher_policy(self) -> VoucherPolicy:
        """The rules a holder checks each request with; revocations re-read as they change."""
        revoked = RevocationFile(self.revocations) if self.revocations is not None else frozenset()
        return VoucherPolicy(self.require_vouchers, self.trusted_issuers, revoked)

    def open_ledger(self, holder: str) -> Ledger | None:
        """Open the holder's ledger with its signing key; None when none is configured."""
        if self.ledger is None or self.signing_key is None:
            return None
        return Ledger(self.ledger, holder, SigningKey.load(self.signing_key))


@dataclass(frozen=True)
class TlsConfig:
    """Certificate paths for the hardening step; all None until then."""

    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None


@dataclass(frozen=True)
class NodeConfig:
    """A parsed node config. ``tables`` is keyed lower-case, as the holder looks tables up."""

    path: Path | None
    name: str | None
    listen: str | None
    tables: Mapping[str, TableConfig]
    governance: GovernanceConfig
    tls: TlsConfig
    # Holders taking part in a masked aggregate, at least (unseen.engine.privacy.participants);
    # never below 2.
    min_holders: int = 2

    def override(self, name: str | None = None, listen: str | None = None) -> NodeConfig:
        """The config with command-line ``--name`` / ``--listen`` taking precedence."""
        return dataclasses.replace(
            self, name=name if name is not None else self.name, listen=listen or self.listen
        )


def load_config(path: Path | str) -> NodeConfig:
    """Read and validate a node config file; raises :class:`ConfigError` naming the problem."""
    try:
        import tomllib  # Python 3.11+: config files need it, the rest of unseen does not.
    except ModuleNotFoundError as exc:  # pragma: no cover - Python 3.10
        raise ConfigError("config files need Python 3.11 or later (tomllib)") from exc

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    return parse_config(data, base=path.resolve().parent, path=path)


def parse_config(
    data: Mapping[str, Any], base: Path | None = None, path: Path | None = None
) -> NodeConfig:
    """Validate an already parsed TOML document; ``base`` resolves relative paths."""
    base = base or Path.cwd()
    top = _table(dict(data), "", _KEYS[""])
    node = _table(top.get("node", {}), "node", _KEYS["node"])
    name = _text(node["name"], "node.name") if "name" in node else None
    listen = _text(node["listen"], "node.listen") if "listen" in node else None
    min_holders = _positive(node.get("min_holders", 2), "node.min_holders")
    if min_holders < 2:
        raise _error("node.min_holders", "is at least 2: one holder's answer alone is not masked")
    tables_raw = _section(top.get("tables", {}), "tables")
    tables: dict[str, TableConfig] = {}
    for tname, traw in tables_raw.items():
        table = _parse_table(tname, traw, _key("tables", tname), base)
        if tname.lower() in tables:
            raise _error(_key("tables", tname), "names a table twice (names ignore case)")
        tables[tname.lower()] = table
    return NodeConfig(
        path=path,
        name=name,
        listen=listen,
        tables=MappingProxyType(tables),
        governance=_parse_governance(top.get("governance", {}), base),
        tls=_parse_tls(top.get("tls", {}), base),
        min_holders=min_holders,
    )


def _parse_table(name: str, raw: Any, path: str, base: Path) -> TableConfig:
    _text(name, path)
    table = _table(raw, path, _KEYS["table"])
    source: Location | None = None
    if "source" in table:
        text = _text(table["source"], _key(path, "source"))
        # A warehouse URL is kept as written; a file path resolves against the config.
        source = text if is_url(text) else _path(text, _key(path, "source"), base, must_exist=True)
    k = _positive(table.get("k", DEFAULT_K), _key(path, "k"))
    p = _dominance_p(table.get("p", DEFAULT_P), _key(path, "p"))
    default_uses = _uses(table.get("default_uses", []), _key(path, "default_uses"))
    max_auto = _positive(
        table.get("max_auto_domain", DEFAULT_MAX_DOMAIN), _key(path, "max_auto_domain")
    )
    cols_path = _key(path, "columns")
    cols_raw = _section(table.get("columns", {}), cols_path)
    columns: dict[str, ColumnPolicy] = {}
    for cname, craw in cols_raw.items():
        cpath = _key(cols_path, cname)
        if cname.lower() in columns:
            raise _error(cpath, "names a column twice (names ignore case)")
        columns[cname.lower()] = _parse_column(cname, craw, cpath)
    batch = _positive(
        table.get("min_score_batch", DEFAULT_MIN_SCORE_BATCH), _key(path, "min_score_batch")
    )
    registration = None
    if "registration" in table:
        registration = _path(table["registration"], _key(path, "registration"), base)
    dp = _parse_dp(table["dp"], _key(path, "dp")) if "dp" in table else None
    return TableConfig(
        name,
        source,
        k,
        default_uses,
        max_auto,
        MappingProxyType(columns),
        min_score_batch=batch,
        registration=registration,
        dp=dp,
        p=p,
    )


def _fraction(value: Any, path: str) -> Fraction:
    # Bounds and costs are public numbers: exact, from TOML ints, floats or decimal strings.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _error(path, "must be a number")
    try:
        number = Fraction(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        raise _error(path, f"{value!r} is not a number") from None
    return number


def _parse_dp(raw: Any, path: str) -> DpPolicy:
    section = _table(raw, path, _KEYS["dp"])
    for needed in ("unit", "max_rows", "rho"):
        if needed not in section:
            raise _error(path, f"missing key {needed!r}")
    rho = _fraction(section["rho"], _key(path, "rho"))
    if rho <= 0:
        raise _error(_key(path, "rho"), "must be positive")
    bounds: dict[str, tuple[Fraction, Fraction]] = {}
    bounds_path = _key(path, "bounds")
    for column, pair in _section(section.get("bounds", {}), bounds_path).items():
        where = _key(bounds_path, column)
        if not isinstance(pair, list) or len(pair) != 2:
            raise _error(where, "must be [lower, upper]")
        low, high = (_fraction(v, where) for v in pair)
        if low > high:
            raise _error(where, "lower bound above upper bound")
        bounds[column.lower()] = (low, high)
    return DpPolicy(
        unit=_text(section["unit"], _key(path, "unit")),
        max_rows=_positive(section["max_rows"], _key(path, "max_rows")),
        rho=rho,
        bounds=MappingProxyType(bounds),
        honest_holders=_positive(section.get("honest_holders", 1), _key(path, "honest_holders")),
        unit_holders=_positive(section.get("unit_holders", 1), _key(path, "unit_holders")),
    )


def _dominance_p(value: Any, path: str) -> float:
    # A policy may tighten the dominance rule, never loosen it below the default.
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(path, "must be a number")
    if not DEFAULT_P <= float(value) <= 100:
        raise _error(path, f"must be between {DEFAULT_P:g} (the default) and 100")
    return float(value)


def _parse_column(name: str, raw: Any, path: str) -> ColumnPolicy:
    _text(name, path)
    column = _table(raw, path, _KEYS["column"])
    if "uses" not in column:
        raise _error(path, "missing key 'uses' (an empty list denies every use)")
    uses = _uses(column["uses"], _key(path, "uses"))
    publish = column.get("publish_domain")
    if publish is not None:
        _bool(publish, _key(path, "publish_domain"))
    domain: tuple[Any, ...] | str | None = None
    if "domain" in column:
        raw_domain = column["domain"]
        dpath = _key(path, "domain")
        if publish is False:
            raise _error(dpath, "a domain is given but publish_domain is false; remove one")
        if raw_domain == AUTO:
            domain = AUTO
        elif isinstance(raw_domain, list):
            if not raw_domain:
                raise _error(dpath, 'an empty domain; list values or use "auto"')
            domain = tuple(raw_domain)
        else:
            raise _error(dpath, f'expected a list of values or "auto", got {_kind(raw_domain)}')
    elif publish:
        domain = AUTO
    if domain is not None and "group" not in uses:
        raise _error(
            _key(path, "domain" if "domain" in column else "publish_domain"),
            "a published domain needs the 'group' use",
        )
    p = _dominance_p(column["p"], _key(path, "p")) if "p" in column else None
    bounds = [
        _score_bound(column[k], _key(path, k)) if k in column else None
        for k in ("score_bound", "score_sum_bound")
    ]
    if any(b is not None for b in bounds) and "score" not in uses:
        raise _error(path, "a score bound needs the 'score' use")
    return ColumnPolicy(name, uses, domain, p, bounds[0], bounds[1])


def _score_bound(value: Any, path: str) -> float:
    """A declared feature bound: a finite number above zero."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _error(path, f"expected a number, got {_kind(value)}")
    if not 0 < value < float("inf"):
        raise _error(path, f"expected a finite bound above zero, got {value}")
    return float(value)


def _parse_governance(raw: Any, base: Path) -> GovernanceConfig:
    gov = _table(raw, "governance", _KEYS["governance"])
    required = _bool(gov.get("require_vouchers", True), "governance.require_vouchers")
    issuers: dict[str, PublicKey] = {}
    names: dict[str, str] = {}
    items = gov.get("trusted_issuers", [])
    if not isinstance(items, list):
        raise _error("governance.trusted_issuers", f"expected a list, got {_kind(items)}")
    for i, item in enumerate(items):
        ipath = _key("governance.trusted_issuers", i)
        label = None
        if isinstance(item, dict):
            entry = _table(item, ipath, {"name", "key"})
            if "key" not in entry:
                raise _error(ipath, "missing key 'key' (a public key file or ed25519:<base64url>)")
            label = _text(entry["name"], _key(ipath, "name")) if "name" in entry else None
            item = entry["key"]
            ipath = _key(ipath, "key")
        key = _issuer_key(item, ipath, base)
        if key.key_id in issuers:
            raise _error(ipath, f"issuer key {key.key_id[:16]} is listed twice")
        issuers[key.key_id] = key
        names[key.key_id] = label or key.key_id[:16]
    supervisors: dict[str, PublicKey] = {}
    items = gov.get("supervisors", [])
    if not isinstance(items, list):
        raise _error("governance.supervisors", f"expected a list, got {_kind(items)}")
    for i, item in enumerate(items):
        key = _issuer_key(item, _key("governance.supervisors", i), base)
        supervisors[key.key_id] = key
    ledger = _path(gov["ledger"], "governance.ledger", base) if "ledger" in gov else None
    signing = None
    if "signing_key" in gov:
        signing = _path(gov["signing_key"], "governance.signing_key", base, must_exist=True)
    revocations = None
    if "revocations" in gov:
        revocations = _path(gov["revocations"], "governance.revocations", base)
    optional = {
        name: _path(gov[name], f"governance.{name}", base)
        for name in ("subject_registry", "consents")
        if name in gov
    }
    require_registration = _bool(
        gov.get("require_registration", False), "governance.require_registration"
    )
    require_consents = _bool(gov.get("require_consents", False), "governance.require_consents")
    if require_consents and "subject_registry" not in optional:
        raise _error(
            "governance.subject_registry",
            "consents are required, so the exchange-signed subject key registry is needed",
        )
    if (ledger is None) != (signing is None):
        missing = "signing_key" if signing is None else "ledger"
        raise _error(f"governance.{missing}", "a ledger needs both ledger and signing_key")
    if required and not issuers:
        raise _error(
            "governance.trusted_issuers",
            "vouchers are required but no issuer is trusted; add an issuer's public key "
            "or set require_vouchers = false",
        )
    if required and ledger is None:
        raise _error(
            "governance.ledger",
            "vouchers are required, so a ledger (and signing_key) is needed to count quotas",
        )
    return GovernanceConfig(
        require_vouchers=required,
        trusted_issuers=MappingProxyType(issuers),
        issuer_names=MappingProxyType(names),
        ledger=ledger,
        signing_key=signing,
        revocations=revocations,
        supervisors=MappingProxyType(supervisors),
        require_registration=require_registration,
        require_consents=require_consents,
        subject_registry=optional.get("subject_registry"),
        consents=optional.get("consents"),
    )


def _issuer_key(item: Any, path: str, base: Path) -> PublicKey:
    """An issuer's public key: inline (``ed25519:…`` or PEM) or a key file."""
    if isinstance(item, str) and item.strip().startswith(("ed25519:", "-----BEGIN")):
        try:
            return PublicKey.from_text(item, "the key")
        except ConfigError as exc:
            raise _error(path, str(exc)) from exc
    key_path = _path(item, path, base, must_exist=True)
    try:
        return PublicKey.load(key_path)
    except ConfigError as exc:
        raise _error(path, str(exc)) from exc


def _parse_tls(raw: Any, base: Path) -> TlsConfig:
    tls = _table(raw, "tls", _KEYS["tls"])
    paths = {k: _path(v, _key("tls", k), base, must_exist=True) for k, v in tls.items()}
    if ("cert" in paths) != ("key" in paths):
        raise _error("tls", "cert and key go together")
    if "client_ca" in paths and "cert" not in paths:
        raise _error("tls.client_ca", "client certificates need the server's cert and key")
    return TlsConfig(paths.get("cert"), paths.get("key"), paths.get("client_ca"))


# -- catalog ------------------------------------------------------------------------------------


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    return Decimal(str(value))


def _of(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if not isinstance(value, kind):
            raise ValueError
        return value

    return check


def _date(value: Any) -> dt.date:
    if isinstance(value, str):
        return dt.date.fromisoformat(value)
    if isinstance(value, dt.datetime) or not isinstance(value, dt.date):
        raise ValueError
    return value


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            raise ValueError  # TIMESTAMP columns hold local (naive) times
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise ValueError


# TOML value -> the Python value the engines return for a column of that kind.
_COERCE: dict[str, Callable[[Any], LiteralValue]] = {
    "INTEGER": _integer,
    "FLOAT": lambda v: float(_number(v)),
    "DECIMAL": _decimal,
    "VARCHAR": _of(str),
    "BOOLEAN": _of(bool),
    "DATE": _date,
    "TIMESTAMP": _timestamp,
}


def _coerce(value: Any, sql_type: SqlType, path: str) -> LiteralValue:
    """A TOML domain value as the value the engine returns for the column's type."""
    convert = _COERCE.get(sql_type.kind)
    try:
        if convert is None:
            raise ValueError
        return convert(value)
    except (ValueError, InvalidOperation):
        raise _error(path, f"{value!r} is not a {sql_type} value") from None


def table_info(
    table: TableConfig,
    schema: Sequence[tuple[str, SqlType]],
    distinct: DistinctValues | None = None,
) -> TableInfo:
    """The catalog entry for a served table: its schema under the config's policy.

    Args:
        table: the table's config.
        schema: the table's actual columns, as ``TableSource.schema()`` gives them.
        distinct: where ``"auto"`` domains come from (see :data:`DistinctValues`);
            needed only if some column asks for one.

    Raises:
        ConfigError: a configured column the table does not have, a use on a
            column of a type unseen cannot read, a domain value that does not
            fit the column's type, or an ``"auto"`` domain larger than
            ``max_auto_domain``.
    """
    base = _key("tables", table.name)
    present = {name.lower() for name, _ in schema}
    for key, policy in table.columns.items():
        if key not in present:
            names = ", ".join(name for name, _ in schema)
            raise _error(
                _key(_key(base, "columns"), policy.name),
                f"table {table.name} has no such column (it has: {names})",
            )
    columns = []
    for name, sql_type in schema:
        policy = table.policy(name)
        path = _key(_key(base, "columns"), policy.name)
        uses = policy.uses
        if sql_type.kind == "OTHER" and uses:
            if name.lower() in table.columns:
                raise _error(_key(path, "uses"), f"column {name} has a type unseen cannot read")
            uses = frozenset()  # default_uses never reach a column unseen cannot read
        domain = _domain(policy, name, sql_type, table, distinct, _key(path, "domain"))
        columns.append(
            ColumnInfo(
                name,
                sql_type,
                uses,
                domain,
                dominance_p=policy.p,
                score_bound=policy.score_bound,
                score_sum_bound=policy.score_sum_bound,
            )
        )
    if table.dp is not None:
        _check_dp(table, present, base)
    return TableInfo(
        table.name,
        tuple(columns),
        min_group_size=table.k,
        min_score_batch=table.min_score_batch,
        dp=table.dp,
        dominance_p=table.p,
    )


def _check_dp(table: TableConfig, present: set[str], base: str) -> None:
    assert table.dp is not None
    path = _key(base, "dp")
    if table.dp.unit.lower() not in present:
        raise _error(_key(path, "unit"), f"table {table.name} has no column {table.dp.unit}")
    for column in table.dp.bounds:
        if column not in present:
            where = _key(_key(path, "bounds"), column)
            raise _error(where, f"table {table.name} has no such column")


def _domain(
    policy: ColumnPolicy,
    name: str,
    sql_type: SqlType,
    table: TableConfig,
    distinct: DistinctValues | None,
    path: str,
) -> tuple[LiteralValue, ...] | None:
    if policy.domain is None:
        return None
    if policy.domain == AUTO:
        if distinct is None:
            raise _error(path, '"auto" needs the data; no distinct values were given')
        if isinstance(distinct, Mapping):
            values = distinct.get(name)
            if values is None:
                raise _error(path, f'"auto" needs the distinct values of column {name}')
            if len(sort_domain(values)) > table.max_auto_domain:
                values = None
        else:
            values = distinct(name, table.max_auto_domain)
        if values is None:
            raise _error(
                path,
                f"column {name} has more than {table.max_auto_domain} distinct values; list the "
                "domain explicitly or raise max_auto_domain",
            )
        return sort_domain(normalize_value(v, sql_type) for v in values)
    assert isinstance(policy.domain, tuple)
    coerced = [_coerce(v, sql_type, _key(path, i)) for i, v in enumerate(policy.domain)]
    return sort_domain(coerced)


def load_tables(
    config: NodeConfig,
    sources: Mapping[str, Location] | None = None,
    opener: Callable[[str, Location], TableSource] = open_source,
) -> tuple[dict[str, TableSource], dict[str, TableInfo]]:
    """Open every configured table and build its catalog entry; both keyed lower-case.

    ``sources`` are ``--table NAME=PATH`` flags: they override a table's
    ``source`` but cannot add a table the config does not describe (its
    columns would silently have no uses).
    """
    sources = {k.lower(): v for k, v in (sources or {}).items()}
    for name in sources:
        if name not in config.tables:
            raise ConfigError(
                f"table {name} is given with --table but the config file has no "
                f"[tables.{name}] section, so none of its columns may be used"
            )
    opened: dict[str, TableSource] = {}
    infos: dict[str, TableInfo] = {}
    for key, table in config.tables.items():
        path = sources.get(key, table.source)
        if path is None:
            raise _error(
                _key(_key("tables", table.name), "source"),
                f"no source given (set it here or with --table {table.name}=PATH)",
            )
        source = opener(table.name, path)
        opened[key] = source
        infos[key] = table_info(table, source.schema(), source.distinct_values)
    return opened, infos


# -- hierarchy (issue 14.1): a coordinator's config file ---------------------------

_COORDINATOR_KEYS = {"listen", "holders", "as_holder", "ledger", "signing_key"}


@dataclass(frozen=True)
class CoordinatorConfig:
    """``[coordinator]`` of a coordinator config file; flags given on the command line win.

    ``as_holder`` makes the coordinator a city under a provincial coordinator
    (unseen.nodes.city); ``ledger`` and ``signing_key`` keep its relay entries.
    """

    listen: str | None = None
    holders: tuple[str, ...] = ()
    as_holder: str | None = None
    ledger: Path | None = None
    signing_key: Path | None = None


def load_coordinator_config(path: Path | str) -> CoordinatorConfig:
    """Read a coordinator config file; raises :class:`ConfigError` naming the problem."""
    import tomllib

    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    top = _table(data, "", {"coordinator"})
    section = _table(top.get("coordinator", {}), "coordinator", _COORDINATOR_KEYS)
    base = path.resolve().parent
    holders = section.get("holders", [])
    if not isinstance(holders, list):
        raise _error("coordinator.holders", f"expected a list, got {_kind(holders)}")
    return CoordinatorConfig(
        listen=_text(section["listen"], "coordinator.listen") if "listen" in section else None,
        holders=tuple(_text(h, _key("coordinator.holders", i)) for i, h in enumerate(holders)),
        as_holder=(
            _text(section["as_holder"], "coordinator.as_holder") if "as_holder" in section else None
        ),
        ledger=_path(section["ledger"], "coordinator.ledger", base)
        if "ledger" in section
        else None,
        signing_key=(
            _path(section["signing_key"], "coordinator.signing_key", base, must_exist=True)
            if "signing_key" in section
            else None
        ),
    )
