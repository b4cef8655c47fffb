"""Start a whole federation as separate local processes (demo, tests, benchmarks).

Each holder and the coordinator is its own ``python -m unseen ... serve``
process listening on an ephemeral loopback port, announced on its first
stdout line. Separate processes are the honest setting: the coordinator's
process never shares memory with the analyst's key, and TenSEAL work at
different holders runs on different cores.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from unseen.engine.errors import UnseenError

__all__ = ["LocalFederation", "NodeProcess"]

_READY = re.compile(r"listening on (\S+:\d+)")


@dataclass
class NodeProcess:
    name: str
    process: subprocess.Popen[str]
    address: str


@dataclass
class LocalFederation:
    """Holders plus a coordinator, as child processes.

    ``holders`` maps a holder's name to its tables (``{table: path or URL}``, quick-start
    mode) or to the path of its node config file.
    """

    holders: Mapping[str, Mapping[str, Path | str] | Path]
    log_dir: Path
    holder_args: Sequence[str] = ()
    coordinator_args: Sequence[str] = ()
    startup_timeout: float = 60.0
    nodes: list[NodeProcess] = field(default_factory=list)
    coordinator: NodeProcess | None = None
    _logs: list[object] = field(default_factory=list)

    def __enter__(self) -> LocalFederation:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def address(self) -> str:
        assert self.coordinator is not None
        return self.coordinator.address

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen[str]:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_dir / f"{name}.log", "w")  # noqa: SIM115 - closed in stop()
        self._logs.append(log)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "unseen", *args],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )

    def _await(self, name: str, process: subprocess.Popen[str]) -> str:
        deadline = time.monotonic() + self.startup_timeout
        assert process.stdout is not None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([process.stdout], [], [], 0.2)
            if ready:
                line = process.stdout.readline()
                match = _READY.search(line)
                if match:
                    return match.group(1)
            if process.poll() is not None:
                log = (self.log_dir / f"{name}.log").read_text().strip().splitlines()
                reason = log[-1] if log else f"exit code {process.returncode}"
                raise UnseenError(f"{name} failed to start: {reason}")
        raise UnseenError(f"{name} did not start within {self.startup_timeout:.0f} s")

    def start(self) -> None:
        pending = []
        for name, tables in self.holders.items():
            args = ["node", "serve", "--name", name, "--listen", "127.0.0.1:0", *self.holder_args]
            if isinstance(tables, Path):
                args += ["--config", str(tables)]
            else:
                for table, path in tables.items():
                    args += ["--table", f"{table}={path}"]
            pending.append((name, self._spawn(name, args)))
        spawned = [process for _, process in pending]
        try:
            for name, process in pending:
                self.nodes.append(NodeProcess(name, process, self._await(name, process)))
            args = ["coordinator", "serve", "--listen", "127.0.0.1:0", *self.coordinator_args]
            for node in self.nodes:
                args += ["--holder", node.address]
            process = self._spawn("coordinator", args)
            spawned.append(process)
            self.coordinator = NodeProcess(
                "coordinator", process, self._await("coordinator", process)
            )
        except BaseException:
            # Nothing half-started outlives a failed start: not the coordinator
            # that did not come up in time, not the log files.
            for process in spawned:
                process.kill()
                process.wait()
                if process.stdout is not None:
                    process.stdout.close()
            self.nodes.clear()
            self.coordinator = None
            self._close_logs()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        everyone = [n.process for n in self.nodes]
        if self.coordinator is not None:
            everyone.append(self.coordinator.process)
        for process in everyone:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in everyone:
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()
        self._close_logs()

    def _close_logs(self) -> None:
        for log in self._logs:
            log.close()  # type: ignore[attr-defined]
        self._logs.clear()
