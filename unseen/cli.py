"""The ``unseen`` command line.

Exit codes (also in README.md):

====  ==========================================================
0     success
1     the request was refused or failed (bad SQL, policy, a holder's error)
2     usage error: bad flags, missing files, invalid configuration
3     a peer was unreachable or did not answer before the deadline
4     verification failed: an encrypted answer disagreed with plaintext
70    internal error (a bug): one line here, the traceback with --debug
====  ==========================================================

User errors print one line on stderr and never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from unseen.engine.data.warehouses.location import Location, is_url
from unseen.engine.errors import ConfigError, RemoteError, UnseenError, VerificationError
from unseen.engine.query.result import Result
from unseen.governance import (
    add_commands,
    add_tls_flags,
    cmd_keys_signing,
    read_vouchers,
    write_receipts,
)
from unseen.governance import tls_files as _tls
from unseen.logs import LEVELS, configure, default_json, default_level
from unseen.stewardship import add_commands as add_stewardship_commands

if TYPE_CHECKING:  # imported where used, so only the commands that talk to a coordinator load it
    from unseen.engine.client import Client
    from unseen.engine.governance.signing import PublicKey
    from unseen.engine.transport.telemetry import NodeMetrics
    from unseen.nodes.coordinator import Coordinator

__all__ = ["main"]

log = logging.getLogger("unseen")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNAVAILABLE, EXIT_MISMATCH, EXIT_BUG = 0, 1, 2, 3, 4, 70


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors in one line with exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"unseen: {message} (see {self.prog} --help)\n")


def _table_arg(text: str) -> tuple[str, Location]:
    name, sep, source = text.partition("=")
    if not sep or not name or not source:
        raise argparse.ArgumentTypeError(f"expected TABLE=SOURCE, got {text!r}")
    # A warehouse URL stays text: Path() would fold its "//".
    return name, source if is_url(source) else Path(source)


def _add_metrics_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics",
        default=None,
        type=_address,
        metavar="HOST:PORT",
        help="serve Prometheus metrics (counts and latencies, never data) on HOST:PORT",
    )


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _serve_forever(server: object, what: str, listen: str, port: int) -> int:
    """Announce the bound address, then block until SIGTERM/SIGINT and drain."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # ``listen`` may ask for port 0; announce the port actually bound.
    print(f"{what} listening on {listen.rpartition(':')[0]}:{port}", flush=True)
    # Wake up now and then: a signal delivered to another thread (any of gRPC's)
    # runs its handler only when the main thread next runs Python code.
    while not stop.wait(0.5):
        pass
    log.info("%s stopping: finishing in-flight calls", what)
    server.stop(grace=10.0).wait()  # type: ignore[attr-defined]
    return EXIT_OK


def _default_workers() -> int:
    # Worker processes pay when a holder has cores to itself; on a two-core box
    # (often shared with other nodes) they only add pickling and contention.
    cores = os.cpu_count() or 1
    return 0 if cores <= 2 else min(4, cores - 1)


def _cmd_node_serve(args: argparse.Namespace) -> int:
    from unseen.nodes.holder import HolderNode, serve_holder

    tls_config = None
    if args.config is not None:
        from unseen.engine.config import load_config

        config = load_config(args.config).override(name=args.name, listen=args.listen)
        if not config.listen:
            raise ConfigError("no listen address: set [node] listen or --listen")
        try:
            listen = _address(config.listen)
        except argparse.ArgumentTypeError as exc:
            raise ConfigError(f"[node] listen in {args.config}: {exc}") from exc
        tls_config = config.tls
        node = HolderNode.from_config(config, dict(args.table), workers=args.workers)
    else:
        if not args.name or not args.listen:
            raise ConfigError("give --name and --listen (or a --config file)")
        if not args.table:
            raise ConfigError("give at least one --table TABLE=SOURCE (or a --config file)")
        listen = args.listen
        node = HolderNode.quickstart(args.name, dict(args.table), k=args.k, workers=args.workers)
    node.pool.start()
    metrics = _metrics(args, "holder", node.name)
    try:
        tls = _tls(args, tls_config, server=True)
        server, port = serve_holder(node, listen, tls, metrics)
        return _serve_forever(server, f"holder {node.name}", listen, port)
    finally:
        node.pool.close()
        for source in node.sources.values():
            source.close()
        if metrics is not None:
            metrics.close()


def _metrics(args: argparse.Namespace, role: str, name: str) -> NodeMetrics | None:
    """The node's Prometheus endpoint when ``--metrics HOST:PORT`` asks for one."""
    if args.metrics is None:
        return None
    from unseen.engine.transport.telemetry import NodeMetrics

    metrics = NodeMetrics(role, name)
    try:
        port = metrics.serve(args.metrics)
    except OSError as exc:
        raise ConfigError(f"cannot serve metrics on {args.metrics}: {exc.strerror}") from exc
    host = args.metrics.rpartition(":")[0]
    print(f"{role} {name} metrics on http://{host}:{port}/metrics", flush=True)
    return metrics


def _cmd_certs(args: argparse.Namespace) -> int:
    from unseen.engine.transport.tls import make_bundle

    parties = [
        (name, role)
        for role in ("holder", "coordinator", "analyst", "supervisor")
        for name in getattr(args, role)
    ]
    if not parties:
        raise ConfigError("name at least one --holder, --coordinator, --analyst or --supervisor")
    hosts = ["localhost", "127.0.0.1", "::1", *args.host]
    files = make_bundle(args.out, parties, hosts)
    for name, tls in files.items():
        print(f"{name}: --tls-cert {tls.cert} --tls-key {tls.key} --tls-ca {tls.ca}")
    return EXIT_OK


def _cmd_coordinator_serve(args: argparse.Namespace) -> int:
    from unseen.nodes.coordinator import Coordinator, serve_coordinator

    if args.config is not None:
        from unseen.engine.config import load_coordinator_config

        config = load_coordinator_config(args.config)
        args.listen = args.listen or config.listen
        args.holder = args.holder or list(config.holders)
        args.as_holder = args.as_holder or config.as_holder
        args.ledger = args.ledger or config.ledger
        args.signing_key = args.signing_key or config.signing_key
    if not args.listen:
        raise ConfigError("give --listen (or [coordinator] listen in a --config file)")
    if not args.holder:
        raise ConfigError("give at least one --holder (or [coordinator] holders in --config)")
    try:
        listen = _address(args.listen)
        holders = [_address(h) for h in args.holder]
    except argparse.ArgumentTypeError as exc:
        raise ConfigError(f"coordinator serve: {exc}") from exc
    if (args.ledger is None) != (args.signing_key is None):
        raise ConfigError("a city ledger needs both --ledger and --signing-key")
    if args.ledger is not None and not args.as_holder:
        raise ConfigError("--ledger keeps a city's relay entries: it needs --as-holder NAME")
    tls = _tls(args, server=True)
    coordinator = Coordinator.connect(holders, tls=tls)
    city = None
    if args.as_holder:
        from unseen.engine.governance.access import Governance
        from unseen.engine.governance.ledger import Ledger
        from unseen.engine.governance.signing import SigningKey
        from unseen.nodes.city import CityHolder

        ledger = None
        if args.ledger is not None:
            ledger = Ledger(args.ledger, args.as_holder, SigningKey.load(args.signing_key))
        supervisors = {k.key_id: k for k in map(_supervisor_key, args.supervisor)}
        governance = Governance(args.as_holder, ledger=ledger, supervisors=supervisors)
        city = CityHolder(args.as_holder, coordinator, governance)
        print(f"coordinator serves as holder {args.as_holder} of a higher coordinator", flush=True)
    metrics = _metrics(args, "coordinator", args.as_holder or "coordinator")
    server, port = serve_coordinator(coordinator, listen, tls, metrics, city=city)
    # Ask every configured holder for its catalog now, so that one that is down or
    # misconfigured shows in the log at start-up, not first in an analyst's error.
    threading.Thread(target=_first_catalogs, args=(coordinator,), daemon=True).start()
    try:
        return _serve_forever(server, "coordinator", args.listen, port)
    finally:
        coordinator.close()
        if metrics is not None:
            metrics.close()


def _supervisor_key(spec: str) -> PublicKey:
    """A supervisor's public key: inline (``ed25519:…``) or a key file."""
    from unseen.engine.governance.signing import PublicKey

    return PublicKey.from_text(spec) if spec.startswith("ed25519:") else PublicKey.load(Path(spec))


def _first_catalogs(coordinator: Coordinator) -> None:
    try:
        tables = coordinator.catalog().tables
    except UnseenError as exc:
        log.error("the federation's catalogs do not merge: %s", exc)
        return
    log.info(
        "federation catalog: %d tables from %d configured holders",
        len(tables),
        len(coordinator.holders.peers),
    )


def _cmd_keys_new(args: argparse.Namespace) -> int:
    from unseen.engine.crypto.keys import AnalystKey, default_key_dir

    directory = args.out or default_key_dir()
    key = AnalystKey.generate()
    key.save(directory)
    print(f"key {key.key_id} written to {directory}")
    return EXIT_OK


def _client(args: argparse.Namespace) -> Client:
    """A client of ``--coordinator`` with the key, deadline, TLS and vouchers the flags give."""
    from unseen.engine.client import Client

    vouchers = read_vouchers(getattr(args, "voucher", []))  # catalog takes no vouchers
    return Client(
        args.coordinator,
        key_dir=args.key,
        timeout=args.timeout,
        vouchers=vouchers,
        tls=_tls(args),
        allow_partial=getattr(args, "allow_partial", False),
    )


def _print_answer(args: argparse.Namespace, result: Result) -> int:
    """Keep the holders' receipts (``--receipts``) and print the answer in ``--format``."""
    write_receipts(args.receipts, result.meta.get("receipts", []))
    print(result.format(args.format))
    if result.meta.get("partial") and args.format == "csv":
        # CSV has no room for it; the table and JSON formats carry the label themselves.
        missing = ", ".join(result.meta.get("missing_holders", []))
        print(f"warning: partial answer without holders {missing}", file=sys.stderr)
    return EXIT_OK


def _cmd_query(args: argparse.Namespace) -> int:
    if args.explain:
        from unseen.engine.query.explain import explain

        with _client(args) as client:  # fetches the catalog only: no plan is sent
            catalog = client.catalog()
            plan = explain(client.compile(args.sql, catalog), catalog)
        print(plan.format(args.format))
        return EXIT_OK
    with _client(args) as client:
        result = client.query(args.sql)
    return _print_answer(args, result)


def _cmd_score(args: argparse.Namespace) -> int:
    from unseen.engine.governance.approval import ApprovedWeights
    from unseen.engine.query.model import load_model, read_entities
    from unseen.joint import joint_model

    joint = joint_model(args.model)  # a model trained jointly (issue 15) is served apart
    if joint is not None:
        with _client(args) as client:
            result = client.predict(joint, read_entities(args.entities, joint["key"]))
        return _print_answer(args, result)

    model = load_model(args.model)
    entities = read_entities(args.entities, model.entity)
    with _client(args) as client:
        if args.prepare_only:
            # What an issuer needs to approve the model: the holders' exponents.
            specs = client.feature_specs(model, client.catalog())
            exponents, receipts = client.prepare(specs, entities)
            write_receipts(args.receipts, [json.loads(r) for r in receipts])
            print(json.dumps({"exponents": exponents}))
            return EXIT_OK
        approved = ApprovedWeights.load(args.approved) if args.approved else None
        result = client.score(model, entities, approved)
    return _print_answer(args, result)


def _cmd_psi(args: argparse.Namespace) -> int:
    from unseen.joint import run_psi

    with _client(args) as client:
        result, receipts = run_psi(client, args)
    write_receipts(args.receipts, receipts)
    print(result.format(args.format))
    return EXIT_OK


def _cmd_train(args: argparse.Namespace) -> int:
    from unseen.joint import run_train

    with _client(args) as client:
        result, receipts = run_train(client, args)
    write_receipts(args.receipts, receipts)
    print(result.format(args.format))
    return EXIT_OK


def _cmd_catalog(args: argparse.Namespace) -> int:
    with _client(args) as client:
        catalog = client.catalog()
    rows = []
    for table in catalog.tables:
        for col in table.columns:
            domain = "" if col.domain is None else f"{len(col.domain)} values"
            rows.append(
                [
                    table.name,
                    col.name,
                    str(col.type),
                    ",".join(sorted(col.uses)),
                    domain,
                    ",".join(table.holders),
                    col.grade or "",  # issue 16: from the table's asset registration
                    ",".join(table.assets),
                ]
            )
    result = Result(
        ["table", "column", "type", "uses", "domain", "holders", "grade", "assets"],
        rows,
        {"conflicts": [list(c) for c in catalog.conflicts]},
    )
    print(result.format(args.format))
    if result.meta.get("partial") and args.format == "csv":
        # CSV has no room for it; the table and JSON formats carry the label themselves.
        missing = ", ".join(result.meta.get("missing_holders", []))
        print(f"warning: partial answer without holders {missing}", file=sys.stderr)
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    if args.province:
        from unseen.province import run_province_demo

        if not 1 <= args.cities <= 21:
            raise ConfigError("--cities is 1 to 21")
        return EXIT_OK if run_province_demo(args.cities, seed=args.seed) == 0 else EXIT_MISMATCH
    from unseen.demo import run_demo

    return (
        EXIT_OK
        if run_demo(enterprises=args.enterprises, seed=args.seed, workdir=args.workdir)
        else EXIT_MISMATCH
    )


def _cmd_sample(args: argparse.Namespace) -> int:
    from unseen.sample import write_sample

    for path in write_sample(args.out, seed=args.seed):
        print(f"wrote {path}")
    return EXIT_OK


def _cmd_bench(args: argparse.Namespace) -> int:
    from unseen import bench

    return bench.run(args)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unseen", description="Federated queries over encrypted aggregates.")
    parser.add_argument("--log-level", default=default_level(), choices=LEVELS)
    parser.add_argument(
        "--log-json", action="store_true", default=default_json(), help="log JSON lines"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", help="run a whole federation on loopback and verify it")
    demo.add_argument("--enterprises", type=int, default=20_000)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="keep generated data and logs here (default: a temporary folder)",
    )
    # -- hierarchy (issue 14.1) --
    demo.add_argument(
        "--province",
        action="store_true",
        help="city coordinators under a provincial coordinator, each answer checked in DuckDB",
    )
    demo.add_argument("--cities", type=int, default=21, help="with --province: 1 to 21")
    demo.set_defaults(func=_cmd_demo)

    sample = commands.add_parser(
        "sample", help="write the README's sample loan tables (loans_a.csv, loans_b.parquet)"
    )
    sample.add_argument("--out", type=Path, default=Path("."), help="folder (default: here)")
    sample.add_argument("--seed", type=int, default=7)
    sample.set_defaults(func=_cmd_sample)

    keys = commands.add_parser("keys", help="analyst keys").add_subparsers(
        dest="keys_command", required=True, parser_class=_Parser
    )
    new = keys.add_parser("new", help="create a CKKS key pair")
    new.add_argument("--out", type=Path, default=None, help="key directory")
    new.set_defaults(func=_cmd_keys_new)
    signing = keys.add_parser("signing", help="create an Ed25519 key (issuer, holder, supervisor)")
    signing.add_argument("--out", type=Path, required=True, help="private key file (0600)")
    signing.set_defaults(func=cmd_keys_signing)
    add_commands(commands, _Parser)
    add_stewardship_commands(commands, _Parser)

    node = commands.add_parser("node", help="data holder node").add_subparsers(
        dest="node_command", required=True, parser_class=_Parser
    )
    serve = node.add_parser("serve", help="serve tables to the federation")
    serve.add_argument("--config", type=Path, default=None, help="node config file (TOML)")
    serve.add_argument("--name", default=None, help="node name (overrides the config)")
    serve.add_argument("--listen", default=None, type=_address, help="HOST:PORT")
    serve.add_argument(
        "--table", action="append", type=_table_arg, default=[], metavar="TABLE=SOURCE"
    )
    serve.add_argument("--k", type=int, default=5, help="minimum group size (quick-start)")
    serve.add_argument(
        "--workers",
        type=int,
        default=_default_workers(),
        help="processes for homomorphic work (0: in the serving process; default: 0 on two "
        "cores or fewer, else up to 4)",
    )
    add_tls_flags(serve)
    _add_metrics_flag(serve)
    serve.set_defaults(func=_cmd_node_serve)

    coord = commands.add_parser("coordinator", help="key-less coordinator").add_subparsers(
        dest="coordinator_command", required=True, parser_class=_Parser
    )
    cserve = coord.add_parser("serve", help="compose holders' encrypted answers")
    cserve.add_argument("--listen", default=None)
    cserve.add_argument("--holder", action="append", default=[], metavar="HOST:PORT")
    cserve.add_argument("--config", type=Path, default=None, help="coordinator config file (TOML)")
    # -- hierarchy (issue 14.1): a city coordinator under a provincial one --
    cserve.add_argument(
        "--as-holder",
        default=None,
        metavar="NAME",
        help="also answer the holder service as NAME to a higher (provincial) coordinator",
    )
    cserve.add_argument(
        "--ledger", type=Path, default=None, help="the city's relay ledger (SQLite)"
    )
    cserve.add_argument("--signing-key", type=Path, default=None, help="key signing the ledger")
    cserve.add_argument(
        "--supervisor",
        action="append",
        default=[],
        metavar="KEY",
        help="a supervisor's public key allowed to read the city's ledger (repeatable)",
    )
    add_tls_flags(cserve)
    _add_metrics_flag(cserve)
    cserve.set_defaults(func=_cmd_coordinator_serve)

    certs = commands.add_parser("certs", help="a development CA and mTLS certificates")
    certs.add_argument("--out", type=Path, required=True, help="folder for the CA and certificates")
    for role in ("holder", "coordinator", "analyst", "supervisor"):
        certs.add_argument(
            f"--{role}",
            action="append",
            default=[],
            metavar="NAME",
            help=f"a {role} certificate (repeatable)",
        )
    certs.add_argument(
        "--host",
        action="append",
        default=[],
        help="extra DNS name or IP for every certificate (besides loopback)",
    )
    certs.set_defaults(func=_cmd_certs)

    from unseen.bench import add_arguments as add_bench_arguments  # argparse only: cheap

    bench = commands.add_parser("bench", help="benchmark suite: table, JSON and plots")
    add_bench_arguments(bench)
    bench.set_defaults(func=_cmd_bench)

    for name, func, helptext in (
        ("query", _cmd_query, "run an aggregate SQL query"),
        ("score", _cmd_score, "score entities with an encrypted linear model"),
        ("catalog", _cmd_catalog, "show the federation's catalog"),
        ("psi", _cmd_psi, "align entity ids with holders by private set intersection"),
        ("train", _cmd_train, "train a logistic model on holders' features and your labels"),
    ):
        sub = commands.add_parser(name, help=helptext)
        sub.add_argument("--coordinator", required=True, type=_address)
        sub.add_argument("--key", type=Path, default=None, help="key directory")
        sub.add_argument("--format", choices=["table", "json", "csv"], default="table")
        sub.add_argument("--timeout", type=float, default=None, help="seconds per call")
        add_tls_flags(sub)
        if name != "catalog":
            sub.add_argument(
                "--voucher", action="append", type=Path, default=[], help="signed voucher file"
            )
            sub.add_argument(
                "--receipts", type=Path, default=None, help="append the holders' receipts here"
            )
        if name == "query":
            sub.add_argument(
                "--explain",
                action="store_true",
                help="print what each holder would compute (plan, columns, rules); run nothing",
            )
            sub.add_argument(
                "--allow-partial",
                action="store_true",
                help="answer without configured holders that are unavailable, and say so",
            )
            sub.add_argument("sql")
        if name == "score":
            sub.add_argument("--model", type=Path, required=True, help="model JSON file")
            sub.add_argument(
                "--entities", type=Path, required=True, help="ids, one per line, or a CSV"
            )
            sub.add_argument(
                "--approved",
                type=Path,
                default=None,
                help="the issuer's encrypted weights (unseen voucher issue --model --weights-out)",
            )
            sub.add_argument(
                "--prepare-only",
                action="store_true",
                help="print the feature exponents an issuer needs to approve the model",
            )
        if name == "psi":
            from unseen.joint import parse_with

            sub.add_argument("--ids", type=Path, required=True, help="the bank's ids or a CSV")
            sub.add_argument("--id-column", default="id", help="the ids' CSV column (id)")
            sub.add_argument(
                "--with",
                dest="with_",
                action="append",
                type=parse_with,
                default=[],
                metavar="HOLDER=TABLE.COLUMN",
                help="a holder and its entity column to align with (repeatable)",
            )
            sub.add_argument("--out", type=Path, default=None, help="write the common ids here")
        if name == "train":
            sub.add_argument("--labels", type=Path, required=True, help="CSV: id and label")
            sub.add_argument("--spec", type=Path, required=True, help="model spec JSON")
            sub.add_argument("--out", type=Path, default=Path("model.json"), help="model file")
            sub.add_argument("--id-column", default="id", help="the labels' id column (id)")
            sub.add_argument("--label-column", default="label", help="the 0/1 column (label)")
        sub.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        configure(args.log_level, args.log_json)
        return int(args.func(args))
    except VerificationError as exc:
        print(f"unseen: {exc}", file=sys.stderr)
        return EXIT_MISMATCH
    except RemoteError as exc:
        print(f"unseen: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.code in ("UNAVAILABLE", "DEADLINE_EXCEEDED") else EXIT_FAILED
    except ConfigError as exc:
        print(f"unseen: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnseenError as exc:
        print(f"unseen: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        if args.debug:
            raise
        print(
            f"unseen: internal error ({type(exc).__name__}: {exc}); rerun with --debug",
            file=sys.stderr,
        )
        return EXIT_BUG
