"""Child processes of the fixtures: spawning with a log file, stopping, and a safety net at exit."""

from __future__ import annotations

import abc
import atexit
import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from c2c_testing._resp import RespError

# Every server process still running; killed at interpreter exit so that nothing outlives pytest,
# even when a teardown was skipped (KeyboardInterrupt, internal error).
_LIVE: set[subprocess.Popen[bytes]] = set()

LOG_TAIL_LINES = 25


class ServerError(RuntimeError):
    """A server did not start, answer or stop in time; the message ends with its log tail."""


class ManagedServer(abc.ABC):
    """The life cycle every server of the fixtures shares: `restart`, `close`, and use as a context manager.

    Subclasses provide `start`, `stop`, `is_running` and `directory` (removed by `close`).
    """

    directory: Path

    @abc.abstractmethod
    def start(self, timeout: float | None = None) -> Self:
        """Start the server and wait until it answers."""

    @abc.abstractmethod
    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server; no-op when stopped."""

    @property
    @abc.abstractmethod
    def is_running(self) -> bool:
        """Whether the server process is alive."""

    def restart(self, timeout: float | None = None) -> Self:
        """`stop()` then `start()` on the same port (the data directory is kept)."""
        self.stop()
        return self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its directory (data included)."""
        try:
            self.stop()
        finally:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Self:
        if not self.is_running:
            try:
                self.start()
            except BaseException:
                self.close()
                raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@atexit.register
def _kill_leftovers() -> None:
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        _LIVE.discard(proc)


def live_processes() -> int:
    """How many server processes started by c2c-testing are still tracked (for leak tests)."""
    return sum(1 for proc in _LIVE if proc.poll() is None)


def log_size(path: Path) -> int:
    """Current size of a log file (0 when it does not exist yet)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def log_text(path: Path, offset: int = 0) -> str:
    """The log written after `offset`, decoded leniently."""
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def log_tail(path: Path, offset: int = 0, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log, indented, ready to end an error message."""
    tail = log_text(path, offset).splitlines()[-lines:]
    body = "\n".join(f"    {line}" for line in tail) if tail else "    (empty)"
    return f"last lines of {path}:\n{body}"


def spawn(
    argv: Sequence[str],
    log_path: Path,
    *,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` with stdout and stderr appended to `log_path`, tracked for the exit safety net."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=None if env is None else dict(env),
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
        )
    _LIVE.add(proc)
    return proc


def stop_process(
    proc: subprocess.Popen[bytes],
    *,
    sig: signal.Signals = signal.SIGTERM,
    timeout: float = 10.0,
    escalate: Sequence[signal.Signals] = (),
) -> None:
    """Send `sig`, wait up to `timeout` s, then each signal of `escalate`, then SIGKILL; always reaps."""
    for current in (sig, *escalate, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            proc.send_signal(current)
        except ProcessLookupError:  # pragma: no cover - exited between poll and kill
            break
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            continue
    proc.wait(timeout=timeout)
    _LIVE.discard(proc)


def clean_env(remove_prefixes: Sequence[str] = ()) -> dict[str, str]:
    """A copy of the environment without the variables starting with one of `remove_prefixes`."""
    return {k: v for k, v in os.environ.items() if not k.startswith(tuple(remove_prefixes))}


class ServerGroup(abc.ABC):
    """Several servers run as one setup (Sentinel, Cluster): waiting on a condition, stop, close, context manager.

    Subclasses provide `start()` and `servers()` (in the order `stop()` stops them).
    """

    @abc.abstractmethod
    def start(self) -> Self:
        """Start every server and wait until the setup is usable."""

    @abc.abstractmethod
    def servers(self) -> Sequence[ManagedServer]:
        """Every server of the setup, in the order they are stopped."""

    def _wait(self, deadline: float, what: str, ready: Callable[[], bool]) -> None:
        """Poll `ready()` (an `OSError` or a Redis error reply counts as not yet) until `deadline`."""
        while True:
            try:
                if ready():
                    return
            except (OSError, RespError):
                pass
            if time.monotonic() >= deadline:
                logs = "\n".join(
                    log_tail(server.log_path, lines=10) for server in self.servers() if hasattr(server, "log_path")
                )
                raise ServerError(f"timed out waiting for {what}\n{logs}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop every server."""
        for server in self.servers():
            server.stop()

    def close(self) -> None:
        """Stop every server and remove their directories; the first failure is raised after the others closed."""
        errors: list[BaseException] = []
        for server in self.servers():
            try:
                server.close()
            except Exception as error:  # close the others, then report the first failure
                errors.append(error)
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
