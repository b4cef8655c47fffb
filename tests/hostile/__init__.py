"""Hostile requests against running unseen nodes: generators, a firing harness and a report.

Used by ``tests/integration/test_hostile.py`` (``UNSEEN_HOSTILE_REQUESTS`` requests, default
800) and by ``scripts/stress.py`` (10 000). The world is a federation of separate processes:
holders h0 (Parquet), h1 (SQLite) and h2 (CSV) host a unicode- and NULL-heavy table ``u``
horizontally; hg serves ``g`` from a DuckDB file under a config file with a ledger and a
trusted supervisor key, so that ReadLedger has something to guard; a coordinator fronts them.

Request ``i`` of a run is built from ``random.Random(f"{seed}:{i}")`` alone, so
:meth:`Generator.make` rebuilds exactly the request that failed. Kinds (the prefix of
:attr:`Hostile.kind`):

* ``random``   random bytes to every method of both services (and health, reflection and an
               unknown method), unary and streaming;
* ``mutated``  valid serialised requests with bits flipped, truncated, bytes inserted, slices
               or whole messages duplicated (protobuf merges duplicated fields), stream parts
               dropped, doubled or reordered;
* ``cross``    a valid message of one method sent to another;
* ``plan``     structurally valid hostile plans: deep expressions (up to thousands of levels),
               group domains of millions of values, huge IN lists, unknown or unicode/NUL
               tables and columns, wrong types, absurd codecs, NaN/inf/huge literals;
* ``key``      private, BFV, wrong-degree, keyless, garbage, truncated, oversized contexts;
* ``model``, ``prepare``, ``score``  garbage, foreign-key, other-degree and truncated weights,
               lying entity counts (more, fewer, millions), unknown models, hostile entity ids;
* ``ledger``   ReadLedger with forged, truncated, rogue, stale or tampered signatures, and
               properly signed absurd ranges;
* ``lookup``, ``unicode``  odd key and model ids; valid queries with unicode/NUL literals.

Three hostile inputs are deliberately *not* in the mix because each is pinned by its own
test and would otherwise drown everything else: public contexts carrying Galois keys
(~80 MB of memory each per node), slow request streams (thread starvation) and entity lists
of gigabytes.

Outcome of a request: any gRPC status within its deadline is an answer. INTERNAL and UNKNOWN
are defects (the server failed on its input), DEADLINE_EXCEEDED is a hang and UNAVAILABLE means
a node went away. A defect that matches a :data:`KNOWN_DEFECTS` entry (an exact status text
and, where needed, a hazard read back from the request's own bytes by :func:`hazards_of`, such
as a measure that divides) is counted apart; each known defect is pinned by a strict xfail
test in ``tests/integration/test_hostile.py``, so fixing it turns that test into a failure
that asks for the entry to be removed. Requests at the size limits ("heavy") are fired one at
a time: several at once exceed the memory bound, which has its own pinned test.

Modules: :mod:`~tests.hostile.world` (the federation, its data and the probe material),
:mod:`~tests.hostile.request` (one request, its wire helpers and hazards),
:mod:`~tests.hostile.generator` (the mix), :mod:`~tests.hostile.harness` (firing, probes,
known defects and the report) and :mod:`~tests.hostile.memory` (resident memory).
"""

from __future__ import annotations

from tests.hostile.generator import Generator
from tests.hostile.harness import (
    KNOWN_DEFECTS,
    REQUESTS,
    Caller,
    KnownDefect,
    Outcome,
    Report,
    health,
    probe,
    replay,
    run_hostile,
)
from tests.hostile.memory import RSS_BOUND, MemoryWatch, peak_rss
from tests.hostile.request import (
    SERVICE_METHODS,
    Hostile,
    deep_expr,
    default_codec,
    hazards_of,
    int_field,
    len_field,
    method_path,
    varint,
)
from tests.hostile.world import (
    ENTITIES,
    Material,
    World,
    addresses_of,
    build_world,
    make_material,
    processes_of,
    server_pids,
    start_federation,
)

__all__ = [
    "ENTITIES",
    "KNOWN_DEFECTS",
    "REQUESTS",
    "RSS_BOUND",
    "SERVICE_METHODS",
    "Caller",
    "Generator",
    "Hostile",
    "KnownDefect",
    "Material",
    "MemoryWatch",
    "Outcome",
    "Report",
    "World",
    "addresses_of",
    "build_world",
    "deep_expr",
    "default_codec",
    "hazards_of",
    "health",
    "int_field",
    "len_field",
    "make_material",
    "method_path",
    "peak_rss",
    "probe",
    "processes_of",
    "replay",
    "run_hostile",
    "server_pids",
    "start_federation",
    "varint",
]
