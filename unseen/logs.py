"""Log set-up for the command line: plain text or JSON lines, level from flags or env.

Servers log events and counts only — never data values, literals, weights or
keys (tests grep the logs of a whole demo run for them). ``UNSEEN_LOG_LEVEL``
and ``UNSEEN_LOG_JSON`` set the defaults so that child processes (holders,
coordinator) started by the demo or the benchmarks log the same way.
"""

from __future__ import annotations

import json
import logging
import os
import time

from unseen.engine.errors import ConfigError

__all__ = ["LEVELS", "JsonFormatter", "configure", "default_json", "default_level"]

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and error type)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["error"] = record.exc_info[0].__name__
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def default_level() -> str:
    return os.environ.get("UNSEEN_LOG_LEVEL", "WARNING").upper()


def default_json() -> bool:
    return os.environ.get("UNSEEN_LOG_JSON", "") not in ("", "0", "false")


def configure(level: str, as_json: bool) -> None:
    """Log to stderr at ``level``; :class:`ConfigError` for a level not in :data:`LEVELS`.

    argparse checks ``--log-level`` but not its default, which comes from
    ``UNSEEN_LOG_LEVEL``, so the check is here.
    """
    if level not in LEVELS:
        raise ConfigError(
            f"log level {level!r} (UNSEEN_LOG_LEVEL?) is not one of {', '.join(LEVELS)}"
        )
    handler = logging.StreamHandler()
    if as_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level))
    # grpc's own chatter is not ours to show at INFO.
    logging.getLogger("grpc").setLevel(max(logging.WARNING, root.level))
