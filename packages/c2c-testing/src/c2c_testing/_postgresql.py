"""A real PostgreSQL cluster in a temporary directory, on a free loopback port."""

from __future__ import annotations

import os
import pwd
import re
import secrets
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Self
from urllib.parse import quote

from c2c_testing._binaries import PostgreSQLBinaries, find_executable, find_postgresql_binaries
from c2c_testing._net import LOOPBACK, free_port, port_is_open
from c2c_testing._process import (
    ManagedServer,
    ServerError,
    clean_env,
    log_size,
    log_tail,
    log_text,
    spawn,
    stop_process,
)

SUPERUSER = "postgres"
# The account that runs the server when the tests run as root (initdb refuses to run as root).
SERVER_ACCOUNT = "postgres"
FALLBACK_ACCOUNT = "c2c-testing"
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# <base>/c2c-postgresql-XXXXXXXX/.s.PGSQL.65535.lock must stay under 108 bytes.
MAX_BASE_LENGTH = 60
PORT_BUSY_MARKERS = ("Address already in use", "could not create any TCP/IP sockets")


@dataclass(frozen=True)
class _Account:
    name: str
    uid: int
    gid: int


def _server_account() -> _Account | None:
    """The account to run initdb and postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in (SERVER_ACCOUNT, FALLBACK_ACCOUNT):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return _Account(name, entry.pw_uid, entry.pw_gid)
    # No `postgres` user (PostgreSQL not installed from Debian packages): create a dedicated one.
    subprocess.run(
        [
            find_executable("useradd"),
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            FALLBACK_ACCOUNT,
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    entry = pwd.getpwnam(FALLBACK_ACCOUNT)
    return _Account(FALLBACK_ACCOUNT, entry.pw_uid, entry.pw_gid)


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def check_identifier(name: str) -> str:
    """Return `name` if it is a plain lower-case SQL identifier, else raise `ValueError`."""
    if not IDENTIFIER.fullmatch(name):
        raise ValueError(f"invalid PostgreSQL name {name!r}: use lower-case letters, digits and _ (max 63)")
    return name


class PostgreSQLServer(ManagedServer):
    """A PostgreSQL cluster (initdb) served on 127.0.0.1 with a password role and a database.

    Unix sockets live in its temporary directory; fsync is off. As root, the server runs as the
    `postgres` system user. `stop()`/`start()` keep the port and the data, for outage tests.
    """

    host: str = LOOPBACK

    def __init__(
        self,
        *,
        port: int | None = None,
        user: str = "c2c",
        password: str | None = None,
        database: str = "c2c",
        startup_timeout: float = 60.0,
    ) -> None:
        """Prepare (not start) a cluster; `start()` runs initdb the first time."""
        self.binaries: PostgreSQLBinaries = find_postgresql_binaries()
        self.user = check_identifier(user)
        self.database = check_identifier(database)
        self.password = password if password is not None else secrets.token_hex(16)
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.startup_timeout = startup_timeout
        self._account = _server_account()
        base = Path(tempfile.gettempdir())
        if self._account is not None and not _traversable_by_others(base):
            base = Path("/tmp")  # the server account must reach its directory
        if len(str(base)) > MAX_BASE_LENGTH:
            base = Path("/tmp")  # the unix socket path must fit in sun_path (107 bytes)
        self.directory = Path(tempfile.mkdtemp(prefix="c2c-postgresql-", dir=base))
        if self._account is not None:
            os.chown(self.directory, self._account.uid, self._account.gid)
        self.data_directory = self.directory / "data"
        self.log_path = self.directory / "postgresql.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._initialized = False
        self._started_once = False

    # -- information ------------------------------------------------------------------------

    def dsn_for(self, database: str, scheme: str = "postgresql") -> str:
        """URL of `database` for the password role, e.g. `postgresql://user:pw@127.0.0.1:port/db`."""
        return f"{scheme}://{quote(self.user)}:{quote(self.password, safe='')}@{self.host}:{self.port}/{database}"

    @property
    def dsn(self) -> str:
        """`postgresql://user:password@127.0.0.1:port/database`."""
        return self.dsn_for(self.database)

    @property
    def asyncpg_url(self) -> str:
        """The SQLAlchemy URL with the asyncpg driver: `postgresql+asyncpg://...`."""
        return self.dsn_for(self.database, scheme="postgresql+asyncpg")

    @property
    def socket_directory(self) -> Path:
        """The directory holding the server's unix socket."""
        return self.directory

    @property
    def is_running(self) -> bool:
        """True while the postmaster process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Everything the server logged so far."""
        return log_text(self.log_path)

    def __repr__(self) -> str:
        state = "running" if self.is_running else "stopped"
        return f"<PostgreSQLServer {self.host}:{self.port} {state}>"

    # -- SQL through psql -------------------------------------------------------------------

    def _psql(self, commands: tuple[str, ...], *, database: str, superuser: bool, timeout: float) -> str:
        env = clean_env(("PG",))
        env["PGCONNECT_TIMEOUT"] = str(max(1, int(timeout)))
        if superuser:
            # Local socket, trust authentication: only for the bootstrap (roles, first database).
            host, user = str(self.socket_directory), SUPERUSER
        else:
            host, user = self.host, self.user
            env["PGPASSWORD"] = self.password
        argv = [self.binaries.psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", host, "-p", str(self.port), "-U", user, "-d", database]
        for command in commands:
            argv += ["-c", command]
        try:
            completed = subprocess.run(
                argv, capture_output=True, text=True, env=env, timeout=timeout, check=False, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired as error:
            raise ServerError(f"psql did not finish within {timeout:g} s: {commands!r}") from error
        if completed.returncode != 0:
            raise ServerError(f"psql failed ({completed.returncode}) on {commands!r}:\n{completed.stderr.strip()}")
        return completed.stdout

    def psql(self, *commands: str, database: str | None = None, timeout: float = 30.0) -> str:
        """Run SQL commands with `psql` over TCP as the password role; return the unaligned output.

        Each command is sent separately (so `CREATE DATABASE` works); an error raises `ServerError`.
        """
        return self._psql(commands, database=database or self.database, superuser=False, timeout=timeout)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database owned by the role (random name by default); return its DSN."""
        name = check_identifier(name) if name is not None else f"test_{secrets.token_hex(6)}"
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting its clients (no error when it does not exist)."""
        self.psql(f'DROP DATABASE IF EXISTS "{check_identifier(name)}" WITH (FORCE)')

    # -- life cycle -------------------------------------------------------------------------

    def _run_as_server(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        account = self._account
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            cwd=self.directory,
            env=clean_env(("PG", "LC_", "LANG")),
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            user=None if account is None else account.uid,
            group=None if account is None else account.gid,
            extra_groups=None if account is None else [],
        )

    def _initdb(self, timeout: float) -> None:
        argv = [self.binaries.initdb, "-D", str(self.data_directory), "-U", SUPERUSER, "-E", "UTF8"]
        argv += ["--locale=C", "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]
        try:
            completed = self._run_as_server(argv, timeout)
        except subprocess.TimeoutExpired as error:
            raise ServerError(f"initdb did not finish within {timeout:g} s") from error
        if completed.returncode != 0:
            raise ServerError(f"initdb failed ({completed.returncode}):\n{completed.stdout}{completed.stderr}")
        self._initialized = True

    def _argv(self) -> list[str]:
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_directory),
            # Throw-away data: trade durability for speed.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        argv = [self.binaries.postgres, "-D", str(self.data_directory)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def start(self, timeout: float | None = None) -> Self:
        """Start the server (initdb first, role and database after the first start) and wait for it."""
        if self.is_running:
            raise ServerError(f"{self!r} is already running")
        timeout = self.startup_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        if not self._initialized:
            self._initdb(timeout)
        while True:
            offset = log_size(self.log_path)
            account = self._account
            self._proc = spawn(
                self._argv(),
                self.log_path,
                cwd=self.directory,
                env=clean_env(("PG", "LC_", "LANG")),
                user=None if account is None else account.uid,
                group=None if account is None else account.gid,
            )
            if self._wait_ready(self._proc, deadline, offset):
                break
            if time.monotonic() >= deadline:
                raise ServerError(
                    f"postgres could not bind {self.host}:{self.port} within {timeout:g} s (port busy)\n"
                    + log_tail(self.log_path, offset)
                )
            if not self._fixed_port and not self._started_once:
                self.port = free_port()
            else:
                time.sleep(0.2)
        if not self._started_once:
            self._bootstrap(max(1.0, deadline - time.monotonic()))
            self._started_once = True
        return self

    def _bootstrap(self, timeout: float) -> None:
        self._psql(
            (
                f"CREATE ROLE \"{self.user}\" LOGIN CREATEDB PASSWORD '{self.password}'",
                f'CREATE DATABASE "{self.database}" OWNER "{self.user}"',
            ),
            database="postgres",
            superuser=True,
            timeout=timeout,
        )

    def _status(self) -> tuple[int, str] | None:
        # postmaster.pid: line 1 the pid, line 8 the status ("starting", "ready", "stopping").
        try:
            lines = (self.data_directory / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 8 or not lines[0].strip().isdigit():
            return None
        return int(lines[0]), lines[7].strip()

    def _wait_ready(self, proc: subprocess.Popen[bytes], deadline: float, offset: int) -> bool:
        """True once ready; False when the port was busy; raise on any other failure."""
        while True:
            code = proc.poll()
            if code is not None:
                stop_process(proc)
                self._proc = None
                if any(marker in log_text(self.log_path, offset) for marker in PORT_BUSY_MARKERS):
                    return False
                raise ServerError(
                    f"postgres exited with status {code} while starting\n" + log_tail(self.log_path, offset)
                )
            if self._status() == (proc.pid, "ready") and port_is_open(self.host, self.port):
                return True
            if time.monotonic() >= deadline:
                self.stop()
                raise ServerError(
                    f"postgres on {self.host}:{self.port} was not ready in time\n" + log_tail(self.log_path, offset)
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server (fast shutdown: clients are disconnected); no-op when stopped."""
        if self._proc is not None:
            stop_process(self._proc, sig=signal.SIGINT, timeout=timeout, escalate=(signal.SIGQUIT,))
            self._proc = None
