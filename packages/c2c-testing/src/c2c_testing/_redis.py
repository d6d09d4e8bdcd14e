"""Real redis-server and redis-sentinel processes on free loopback ports."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Self
from urllib.parse import quote

from c2c_testing._binaries import find_executable
from c2c_testing._net import LOOPBACK, free_port
from c2c_testing._process import (
    ManagedServer,
    ServerError,
    ServerGroup,
    log_size,
    log_tail,
    log_text,
    spawn,
    stop_process,
)
from c2c_testing._resp import Arg, RespError, RespValue, as_text, execute, pairs_to_dict

PORT_BUSY_MARKERS = ("Address already in use", "EADDRINUSE")
# Replies meaning "alive but not ready to serve yet".
NOT_READY_CODES = ("LOADING", "MASTERDOWN")
PROBE_KEY = "c2c-testing:replication-probe"


class RedisServer(ManagedServer):
    """A `redis-server` process on 127.0.0.1, without persistence, in its own temporary directory.

    Create it, then `start()` (or use it as a context manager); `close()` stops it and removes
    the directory. `stop()`/`start()`/`restart()` keep the port, for outage tests.
    """

    host: str = LOOPBACK
    log_path: Path

    def __init__(
        self,
        *,
        port: int | None = None,
        args: Sequence[str] = (),
        password: str | None = None,
        executable: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """Prepare (not start) a server; `args` are extra `redis-server` command-line options."""
        self._executable = executable if executable is not None else find_executable(self._program())
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.password = password
        self.args = tuple(args)
        self.startup_timeout = startup_timeout
        self.directory = Path(tempfile.mkdtemp(prefix=f"c2c-{self._program()}-"))
        self.log_path = self.directory / f"{self._program()}.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False

    @classmethod
    def _program(cls) -> str:
        return "redis-server"

    def _argv(self) -> list[str]:
        argv = [
            self._executable,
            "--port",
            str(self.port),
            "--bind",
            LOOPBACK,
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.directory),
            "--daemonize",
            "no",
            "--logfile",
            "",
        ]
        if self.password is not None:
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        return argv + list(self.args)

    # -- information ------------------------------------------------------------------------

    @property
    def address(self) -> tuple[str, int]:
        """`(host, port)`."""
        return (self.host, self.port)

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0` (with `:password@` when the server has one)."""
        auth = f":{quote(self.password, safe='')}@" if self.password is not None else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def is_running(self) -> bool:
        """True while the process is alive (it may still be loading)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id while running."""
        return self._proc.pid if self.is_running and self._proc is not None else None

    def log(self) -> str:
        """Everything the server logged so far."""
        return log_text(self.log_path)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"

    # -- commands ---------------------------------------------------------------------------

    def command(self, *args: Arg, timeout: float = 5.0) -> RespValue:
        """Send one command on a new connection and return the reply.

        Bulk strings come back as `bytes`, status replies as `str`, integers as `int`, arrays as
        lists, nil as None; an error reply raises `RespError`; a stopped server raises `OSError`.
        """
        return execute(self.host, self.port, *args, password=self.password, timeout=timeout)

    def ping(self, timeout: float = 1.0) -> bool:
        """True when the server answers PING."""
        try:
            return self.command("PING", timeout=timeout) == "PONG"
        except (OSError, RespError):
            return False

    # -- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> Self:
        """Start the process and wait until it answers PING (at most `timeout` seconds).

        The first start moves to another free port if the chosen one was taken meanwhile; later
        starts keep the port and retry while it is busy.
        """
        if self.is_running:
            raise ServerError(f"{self!r} is already running")
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            offset = log_size(self.log_path)
            self._before_spawn()
            self._proc = spawn(self._argv(), self.log_path, cwd=self.directory)
            outcome = self._wait_ready(self._proc, deadline, offset)
            if outcome == "ready":
                self._started_once = True
                return self
            # The port was busy: a fresh server picks another port, a restart waits for it.
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"{self._program()} could not bind {self.host}:{self.port} within {timeout:g} s (port busy)\n"
                    + log_tail(self.log_path, offset)
                )
            if not self._fixed_port and not self._started_once:
                self.port = free_port()
            else:
                time.sleep(0.1)

    def _before_spawn(self) -> None:
        """Hook for subclasses (the sentinel writes its configuration file here)."""

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float, offset: int) -> str:
        while True:
            code = proc.poll()
            if code is not None:
                stop_process(proc)
                text = log_text(self.log_path, offset)
                if any(marker in text for marker in PORT_BUSY_MARKERS):
                    return "port-busy"
                raise ServerError(
                    f"{self._program()} on port {self.port} exited with status {code} while starting\n"
                    + log_tail(self.log_path, offset)
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                stop_process(proc)
                raise ServerError(
                    f"{self._program()} on {self.host}:{self.port} did not answer PING in time\n"
                    + log_tail(self.log_path, offset)
                )
            # False: another server holds the port and answered in our place; ours is about to exit.
            if self._answers_as(proc.pid, timeout=min(0.5, remaining)) is True:
                return "ready"
            time.sleep(0.02)

    def _answers_as(self, pid: int, timeout: float) -> bool | None:
        """None: no answer yet; True: the server on our port is process `pid`; False: another one."""
        try:
            info = self.command("INFO", "server", timeout=timeout)
        except RespError as error:
            if error.code in NOT_READY_CODES:
                return None
            return True  # e.g. NOAUTH without a password: it answers, assume it is ours
        except OSError:
            return None
        match = re.search(rb"^process_id:(\d+)", info if isinstance(info, bytes) else b"", re.MULTILINE)
        return match is not None and int(match.group(1)) == pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process (SIGTERM, then SIGKILL after `timeout` s); no-op when stopped."""
        if self._proc is not None:
            stop_process(self._proc, timeout=timeout)
            self._proc = None

    @contextlib.contextmanager
    def frozen(self) -> Iterator[Self]:
        """Freeze the server for the `with` block (SIGSTOP), then let it go on (SIGCONT), data intact.

        Unlike a stopped server, whose connections are refused at once, a frozen one keeps every
        connection open and answers nothing: the failure only a timeout bounds. Raises `ServerError`
        when the server is not running.
        """
        pid = self.pid
        if pid is None:
            raise ServerError(f"{self!r} is not running: there is nothing to freeze")
        os.kill(pid, signal.SIGSTOP)
        try:
            yield self
        finally:
            with contextlib.suppress(ProcessLookupError):  # stopped meanwhile (e.g. by a SIGKILL)
                os.kill(pid, signal.SIGCONT)


class SentinelProcess(RedisServer):
    """One `redis-sentinel` process watching one master (configuration file in its directory)."""

    def __init__(
        self,
        *,
        monitor: tuple[str, int],
        service_name: str,
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        executable: str | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        """Prepare a sentinel monitoring `monitor` as `service_name`."""
        self.monitor = monitor
        self.service_name = service_name
        self.quorum = quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        super().__init__(executable=executable, startup_timeout=startup_timeout)
        self.config_path = self.directory / "sentinel.conf"

    @classmethod
    def _program(cls) -> str:
        return "redis-sentinel"

    def _before_spawn(self) -> None:
        # Written at the first start only: Sentinel rewrites it with what it learned, and a
        # restarted sentinel must keep that state (and the port, which may have changed before).
        if self._started_once and self.config_path.exists():
            return
        name = self.service_name
        self.config_path.write_text(
            f"port {self.port}\n"
            f"bind {LOOPBACK}\n"
            "daemonize no\n"
            'logfile ""\n'
            f'dir "{self.directory}"\n'
            f"sentinel monitor {name} {self.monitor[0]} {self.monitor[1]} {self.quorum}\n"
            f"sentinel down-after-milliseconds {name} {self.down_after_ms}\n"
            f"sentinel failover-timeout {name} {self.failover_timeout_ms}\n"
            f"sentinel parallel-syncs {name} 1\n"
        )

    def _argv(self) -> list[str]:
        return [self._executable, str(self.config_path)]


class RedisSentinel(ServerGroup):
    """A master, a replica and `count` Sentinels watching them as `service_name`.

    `master` and `replica` name the roles as of the last `failover()`, which swaps them.
    """

    def __init__(
        self,
        *,
        count: int = 1,
        service_name: str = "mymaster",
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 4000,
        startup_timeout: float = 30.0,
    ) -> None:
        """Prepare (not start) the servers; `start()` waits until every sentinel sees both nodes."""
        if count < 1:
            raise ValueError("a Sentinel setup needs at least one sentinel")
        server = find_executable("redis-server")
        sentinel = find_executable("redis-sentinel")
        self.service_name = service_name
        self.startup_timeout = startup_timeout
        # Redis 7 waits 5 s before a diskless full sync by default: the replica would lag behind.
        fast_sync = ("--repl-diskless-sync-delay", "0")
        self.master = RedisServer(executable=server, args=fast_sync)
        self.replica = RedisServer(
            executable=server, args=(*fast_sync, "--replicaof", self.master.host, str(self.master.port))
        )
        self.sentinel_servers = [
            SentinelProcess(
                monitor=self.master.address,
                service_name=service_name,
                quorum=count // 2 + 1,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                executable=sentinel,
            )
            for _ in range(count)
        ]

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """`[(host, port), ...]` of the sentinels."""
        return [s.address for s in self.sentinel_servers]

    @property
    def sentinels_str(self) -> str:
        """The sentinels as `127.0.0.1:P1,127.0.0.1:P2` (the form settings accept)."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def sentinel_command(self, *args: Arg, timeout: float = 5.0) -> RespValue:
        """Send a command to the first sentinel that answers."""
        errors: list[str] = []
        for sentinel in self.sentinel_servers:
            try:
                return sentinel.command(*args, timeout=timeout)
            except OSError as error:
                errors.append(f"{sentinel.host}:{sentinel.port}: {error}")
        raise ConnectionError("no sentinel answered: " + "; ".join(errors))

    def current_master(self) -> tuple[str, int]:
        """The master address a sentinel reports (`SENTINEL get-master-addr-by-name`)."""
        reply = self.sentinel_command("SENTINEL", "get-master-addr-by-name", self.service_name)
        return _address(reply)

    def wait_for_master(self, address: tuple[str, int], timeout: float = 30.0) -> None:
        """Wait until every sentinel reports `address` as the master (after an automatic failover)."""
        deadline = time.monotonic() + timeout

        def reported() -> bool:
            return all(
                _address(s.command("SENTINEL", "get-master-addr-by-name", self.service_name)) == address
                for s in self.sentinel_servers
                if s.is_running
            )

        self._wait(deadline, f"the sentinels to report {address[0]}:{address[1]} as master", reported)

    def start(self) -> Self:
        """Start master, replica and sentinels; wait until every sentinel knows master and replica."""
        deadline = time.monotonic() + self.startup_timeout
        self.master.start()
        self.replica.start()
        # Sentinel discovers replicas from the master's INFO: start it once the replica is linked,
        # so its first INFO already lists the replica instead of ten seconds later.
        self._wait(deadline, "the replica to finish its sync", lambda: _replica_linked(self.replica, self.master))
        self._wait_streaming(self.master, self.replica, deadline)
        for sentinel in self.sentinel_servers:
            sentinel.start()
        for sentinel in self.sentinel_servers:
            self._wait(
                deadline, f"sentinel {sentinel.port} to see master and replica", partial(self._knows_all, sentinel)
            )
        return self

    def _knows_all(self, sentinel: SentinelProcess) -> bool:
        name = self.service_name
        if _address(sentinel.command("SENTINEL", "get-master-addr-by-name", name)) != self.master.address:
            return False
        replicas = sentinel.command("SENTINEL", "replicas", name)
        if not isinstance(replicas, list):
            return False
        healthy = [
            info
            for info in map(pairs_to_dict, replicas)
            if (info.get("ip"), info.get("port")) == (self.replica.host, str(self.replica.port))
            and info.get("flags") == "slave"
            and info.get("master-link-status") == "ok"
        ]
        if not healthy:
            return False
        # Several sentinels must also know each other, or they cannot agree on an automatic failover.
        others = sentinel.command("SENTINEL", "sentinels", name)
        return isinstance(others, list) and len(others) >= len(self.sentinel_servers) - 1

    def failover(self, timeout: float = 30.0) -> tuple[str, int]:
        """Make the replica the master through `SENTINEL FAILOVER`; return the new master address.

        Waits until every sentinel reports the promoted node and that node answers ROLE as master.
        It then points the old master at the new one right away (Sentinel would do the same after
        about ten seconds) and waits until it is linked, so that a second failover can follow.
        """
        deadline = time.monotonic() + timeout
        old, new = self.master, self.replica
        while True:
            try:
                self.sentinel_command("SENTINEL", "FAILOVER", self.service_name)
                break
            except RespError as error:
                # NOGOODSLAVE: the sentinel has no fresh INFO of the replica yet; INPROG: wait.
                if error.code not in ("NOGOODSLAVE", "INPROG") or time.monotonic() >= deadline:
                    raise ServerError(f"SENTINEL FAILOVER {self.service_name} refused: {error}") from error
                time.sleep(0.2)

        def promoted() -> bool:
            if any(
                _address(s.command("SENTINEL", "get-master-addr-by-name", self.service_name)) != new.address
                for s in self.sentinel_servers
            ):
                return False
            role = new.command("ROLE")
            return isinstance(role, list) and bool(role) and role[0] == b"master"

        self._wait(deadline, f"the sentinels to promote {new.host}:{new.port}", promoted)
        old.command("REPLICAOF", new.host, str(new.port))
        self._wait(deadline, f"{old.host}:{old.port} to replicate the new master", lambda: _replica_linked(old, new))
        self._wait_streaming(new, old, deadline)
        self.master, self.replica = new, old
        return new.address

    def _wait_streaming(self, master: RedisServer, replica: RedisServer, deadline: float) -> None:
        # "connected" is not enough: after a diskless sync the master holds writes back until the
        # replica's first ACK (up to a second). A probe key written, seen, deleted and seen deleted
        # proves writes flow now, and leaves both keyspaces as they were.
        token = secrets.token_hex(8).encode()
        master.command("SET", PROBE_KEY, token)
        self._wait(deadline, "the replica to receive writes", lambda: replica.command("GET", PROBE_KEY) == token)
        master.command("DEL", PROBE_KEY)
        self._wait(
            deadline, "the replica to receive the probe deletion", lambda: replica.command("EXISTS", PROBE_KEY) == 0
        )

    def servers(self) -> list[RedisServer]:
        """The sentinels first (so that they do not fail over while the others stop), then replica and master."""
        return [*self.sentinel_servers, self.replica, self.master]


def _address(reply: RespValue) -> tuple[str, int]:
    if not isinstance(reply, list) or len(reply) != 2:
        raise ServerError(f"unexpected SENTINEL get-master-addr-by-name reply: {reply!r}")
    return (as_text(reply[0]), int(as_text(reply[1])))


def _replica_linked(replica: RedisServer, master: RedisServer) -> bool:
    # ROLE on a replica: [b"slave", master_ip, master_port, b"connected", offset].
    role = replica.command("ROLE")
    return (
        isinstance(role, list)
        and len(role) >= 4
        and role[0] == b"slave"
        and (role[1], role[2]) == (master.host.encode(), master.port)
        and role[3] == b"connected"
    )
