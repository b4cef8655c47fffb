"""Revoking vouchers: a holder's list of withdrawn vouchers, kept in a JSON file.

Operators add to the file with :func:`revoke`; a running holder watches it
through :class:`RevocationFile` and refuses a revoked voucher from its next
request on (:func:`unseen.engine.governance.voucher.authorize` says when and why it was revoked).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import threading
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from unseen.engine.errors import ConfigError
from unseen.engine.governance.fields import is_voucher_id, one_line, utc_now
from unseen.engine.governance.signing import parse_utc, utc_text, write_atomic

__all__ = ["Revocation", "RevocationFile", "RevocationList", "revoke"]


@dataclass(frozen=True)
class Revocation:
    """One revoked voucher: its id, why and when it was revoked."""

    voucher_id: str
    reason: str
    revoked_at: dt.datetime


class RevocationList(Container[str]):
    """A holder's revoked voucher ids with reason and time; a JSON file on disk.

    File format::

        {"type": "unseen.revocations", "version": 1,
         "revoked": [{"voucher_id": "v-1", "reason": "…", "revoked_at": TIME}, …]}

    The list is the holder's own (not signed): the holder trusts its
    operator. An issuer who wants a voucher withdrawn tells the holders.
    """

    def __init__(self, entries: Iterable[Revocation] = ()):
        self._entries: dict[str, Revocation] = {}
        for entry in entries:
            self._entries.setdefault(entry.voucher_id, entry)

    def __contains__(self, voucher_id: object) -> bool:
        return voucher_id in self._entries

    def __iter__(self) -> Iterator[Revocation]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, voucher_id: str) -> Revocation | None:
        return self._entries.get(voucher_id)

    def with_revocation(self, entry: Revocation) -> RevocationList:
        return RevocationList([*self._entries.values(), entry])

    def to_json(self) -> str:
        entries = [
            {"voucher_id": e.voucher_id, "reason": e.reason, "revoked_at": utc_text(e.revoked_at)}
            for e in sorted(self._entries.values(), key=lambda e: (e.revoked_at, e.voucher_id))
        ]
        data = {"type": "unseen.revocations", "version": 1, "revoked": entries}
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def from_json(cls, text: str, where: str = "revocation list") -> RevocationList:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("type") != "unseen.revocations":
                raise ValueError("not an unseen revocation list")
            if data.get("version") != 1:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            entries = []
            for item in data["revoked"]:
                entries.append(
                    Revocation(
                        voucher_id=one_line(item["voucher_id"], "voucher_id", 128),
                        reason=one_line(item["reason"], "reason", 1024),
                        revoked_at=parse_utc(item["revoked_at"]),
                    )
                )
        except (ValueError, TypeError, KeyError, ConfigError) as exc:
            raise ConfigError(f"{where} is invalid: {exc}") from exc
        return cls(entries)

    @classmethod
    def load(cls, path: Path | str) -> RevocationList:
        """Read a revocation file; a file that does not exist yet means nothing is revoked."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return cls()
        except OSError as exc:
            raise ConfigError(f"cannot read revocation list {path}: {exc.strerror}") from exc
        return cls.from_json(text, str(path))

    def save(self, path: Path | str) -> None:
        """Write atomically (temporary file, fsync, rename): readers never see half a list."""
        write_atomic(Path(path), self.to_json().encode("utf-8"), 0o644)


def revoke(
    path: Path | str, voucher_id: str, reason: str, now: dt.datetime | None = None
) -> Revocation:
    """Add ``voucher_id`` to the revocation file at ``path`` (created if missing).

    Serialised between processes by a lock file, so two operators revoking at
    once both succeed. Revoking an already revoked voucher keeps the first
    entry and returns it.
    """
    path = Path(path)
    if not is_voucher_id(voucher_id):
        raise ConfigError(f"{voucher_id!r} is not a voucher id")
    entry = Revocation(voucher_id, one_line(reason, "revocation reason"), utc_now(now))
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            current = RevocationList.load(path)
            existing = current.get(voucher_id)
            if existing is not None:
                return existing
            current.with_revocation(entry).save(path)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return entry


class RevocationFile(Container[str]):
    """A live view of a revocation file: re-read whenever the file changes.

    A running holder keeps one; ``unseen`` operators revoke with
    :func:`revoke` and the next request sees it, without a restart.
    Thread-safe.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._list = RevocationList()
        self.current()

    def current(self) -> RevocationList:
        """The list as the file holds it now."""
        try:
            st = self.path.stat()
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        with self._lock:
            if stamp != self._stamp or stamp is None:
                self._list = RevocationList.load(self.path)
                self._stamp = stamp
            return self._list

    def __contains__(self, voucher_id: object) -> bool:
        return voucher_id in self.current()

    def get(self, voucher_id: str) -> Revocation | None:
        return self.current().get(voucher_id)
