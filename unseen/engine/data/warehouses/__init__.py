"""Tables in warehouses a holder already runs: PostgreSQL, MySQL/MariaDB, Spark SQL.

:func:`open_warehouse` turns a URL (:mod:`unseen.engine.data.warehouses.location`) into a
:class:`~unseen.engine.data.source.TableSource` whose SQL runs inside the warehouse:
sqlglot writes it in the engine's dialect with every literal bound as a
parameter, filters and grouping are pushed down whole, and only per-group
sums (or, for scoring, the requested entities' features, streamed in
blocks) reach the holder process. Each engine's driver is imported only
when a table uses it, so a holder that serves files needs none installed;
they are the extras ``unseen[postgresql]``, ``unseen[mysql]``, ``unseen[spark]``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from unseen.engine.data.warehouses.location import parse_url
from unseen.engine.errors import ConfigError

if TYPE_CHECKING:  # unseen.engine.data.source imports this package's location module
    from unseen.engine.data.source import TableSource

__all__ = ["open_warehouse"]

# engine -> (module, class, pip extra that installs its driver)
_ENGINES = {
    "postgresql": ("unseen.engine.data.warehouses.postgres", "PostgresSource", "postgresql"),
    "mysql": ("unseen.engine.data.warehouses.mysql", "MySQLSource", "mysql"),
    "spark": ("unseen.engine.data.warehouses.spark", "SparkSource", "spark"),
}


def open_warehouse(name: str, url: str) -> TableSource:
    """Open the table a warehouse URL names, as the source of served table ``name``.

    Raises:
        ConfigError: a bad URL, a missing driver, an unreachable server or a
            missing table; the message never holds a password.
    """
    location = parse_url(url, name)
    module_name, class_name, extra = _ENGINES[location.engine]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"table {name}: serving {location.engine} tables needs its driver: "
            f"pip install 'unseen[{extra}]' ({exc.name} is missing)"
        ) from exc
    source: TableSource = getattr(module, class_name)(name, location)
    return source
