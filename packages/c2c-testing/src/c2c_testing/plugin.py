"""The pytest plugin (entry point `c2c_testing`): fixtures that start real servers.

Fixtures: `redis_server`, `redis_server_factory`, `redis_sentinel`, `redis_sentinel_factory`,
`redis_cluster`, `redis_cluster_factory`,
`postgresql` (session), `postgresql_database` and `c2casgiutils_014_python` (session: the
interpreter of a c2casgiutils 0.14.0 environment). A missing binary is an error saying how to
install it, never a skip; so is an environment that cannot be built.
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

import pytest

from c2c_testing._binaries import MissingBinaryError, binary_version, find_executable, find_postgresql_binaries
from c2c_testing._cluster import RedisCluster
from c2c_testing._postgresql import PostgreSQLServer
from c2c_testing._process import ServerError
from c2c_testing._redis import RedisSentinel, RedisServer
from c2c_testing._reference import ReferenceEnvironmentError, ensure_c2casgiutils_014, reference_venv_location

_T = TypeVar("_T")

# The servers of the running `postgresql` fixtures (one per session; more under pytester).
_SESSION_POSTGRESQL: list[PostgreSQLServer] = []

# Fixture name -> marker added to the tests that use it, so `-m "not postgresql"` works.
FIXTURE_MARKERS = {
    "redis_server": "redis",
    "redis_server_factory": "redis",
    "redis_sentinel": "redis",
    "redis_sentinel_factory": "redis",
    "redis_cluster": "redis",
    "redis_cluster_factory": "redis",
    "postgresql": "postgresql",
    "postgresql_database": "postgresql",
}
MARKER_HELP = {
    "redis": "redis: needs a real redis-server",
    "postgresql": "postgresql: needs a real PostgreSQL server",
}


class RedisServerFactory(Protocol):
    """Type of `redis_server_factory`: starts one more `RedisServer` (stopped at teardown)."""

    def __call__(
        self, *, port: int | None = None, args: Sequence[str] = (), password: str | None = None
    ) -> RedisServer:
        """Start a server; `args` are extra redis-server options, `password` sets requirepass."""
        ...


class RedisSentinelFactory(Protocol):
    """Type of `redis_sentinel_factory`: starts a master, a replica and `count` sentinels."""

    def __call__(
        self,
        *,
        count: int = 1,
        service_name: str = "mymaster",
        down_after_ms: int = 2000,
        failover_timeout_ms: int = 4000,
    ) -> RedisSentinel:
        """Start a Sentinel setup and wait until every sentinel sees master and replica."""
        ...


def _attempt(action: Callable[[], _T]) -> _T:
    """Run `action`; a missing binary or a server that does not start becomes a clear test error."""
    try:
        return action()
    except (MissingBinaryError, ServerError) as error:
        message = str(error)
    # Outside the except block: the error is reported once, without a chained copy.
    pytest.fail(message, pytrace=False)


def _start(create: Callable[[], _T], start: Callable[[_T], object], close: Callable[[_T], None]) -> _T:
    def create_and_start() -> _T:
        server = create()
        try:
            start(server)
        except BaseException:
            close(server)
            raise
        return server

    return _attempt(create_and_start)


def _close_all(servers: Sequence[RedisServer | RedisSentinel | RedisCluster]) -> None:
    errors: list[Exception] = []
    for server in reversed(servers):
        try:
            server.close()
        except Exception as error:  # close the others, then report the first failure
            errors.append(error)
    if errors:
        raise errors[0]


@pytest.fixture
def redis_server_factory() -> Iterator[RedisServerFactory]:
    """Start `RedisServer`s on demand; every one is stopped and removed at teardown."""
    servers: list[RedisServer] = []

    def factory(*, port: int | None = None, args: Sequence[str] = (), password: str | None = None) -> RedisServer:
        server = _start(
            lambda: RedisServer(port=port, args=args, password=password), RedisServer.start, RedisServer.close
        )
        servers.append(server)
        return server

    yield factory
    _close_all(servers)


@pytest.fixture
def redis_server(redis_server_factory: RedisServerFactory) -> RedisServer:
    """A running `redis-server` on a free 127.0.0.1 port, without persistence."""
    return redis_server_factory()


@pytest.fixture
def redis_sentinel_factory() -> Iterator[RedisSentinelFactory]:
    """Start `RedisSentinel` setups on demand; every process is stopped at teardown."""
    setups: list[RedisSentinel] = []

    def factory(
        *, count: int = 1, service_name: str = "mymaster", down_after_ms: int = 2000, failover_timeout_ms: int = 4000
    ) -> RedisSentinel:
        setup = _start(
            lambda: RedisSentinel(
                count=count,
                service_name=service_name,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
            ),
            RedisSentinel.start,
            RedisSentinel.close,
        )
        setups.append(setup)
        return setup

    yield factory
    _close_all(setups)


@pytest.fixture
def redis_sentinel(redis_sentinel_factory: RedisSentinelFactory) -> RedisSentinel:
    """A master, a replica and one sentinel watching them as `mymaster`, ready for failover."""
    return redis_sentinel_factory()


class RedisClusterFactory(Protocol):
    """Type of `redis_cluster_factory`: starts a Redis Cluster (stopped at teardown)."""

    def __call__(
        self, *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000, password: str | None = None
    ) -> RedisCluster:
        """Start `masters` masters with `replicas` replicas each and wait until the cluster is healthy."""
        ...


@pytest.fixture
def redis_cluster_factory() -> Iterator[RedisClusterFactory]:
    """Start `RedisCluster`s on demand; every node is stopped and removed at teardown."""
    clusters: list[RedisCluster] = []

    def factory(
        *, masters: int = 3, replicas: int = 1, node_timeout_ms: int = 1000, password: str | None = None
    ) -> RedisCluster:
        cluster = _start(
            lambda: RedisCluster(
                masters=masters, replicas=replicas, node_timeout_ms=node_timeout_ms, password=password
            ),
            RedisCluster.start,
            RedisCluster.close,
        )
        clusters.append(cluster)
        return cluster

    yield factory
    _close_all(clusters)


@pytest.fixture
def redis_cluster(redis_cluster_factory: RedisClusterFactory) -> RedisCluster:
    """A Redis Cluster of three masters with a replica each (node timeout 1 s: a failover takes a few seconds)."""
    return redis_cluster_factory()


@pytest.fixture(scope="session")
def postgresql() -> Iterator[PostgreSQLServer]:
    """A PostgreSQL server for the whole session, with a password role and a database.

    A test may `stop()` it for an outage test: it is started again after that test.
    """
    server = _start(PostgreSQLServer, PostgreSQLServer.start, PostgreSQLServer.close)
    _SESSION_POSTGRESQL.append(server)
    yield server
    _SESSION_POSTGRESQL.remove(server)
    server.close()


def _ensure_running(server: PostgreSQLServer) -> None:
    if not server.is_running:
        _attempt(server.start)


@pytest.fixture
def postgresql_database(postgresql: PostgreSQLServer) -> Iterator[str]:
    """The DSN of a fresh, empty database owned by `postgresql.user`, dropped after the test."""
    _ensure_running(postgresql)
    dsn = _attempt(postgresql.create_database)
    yield dsn
    _ensure_running(postgresql)
    postgresql.drop_database(dsn.rsplit("/", 1)[1])


@pytest.fixture(scope="session")
def c2casgiutils_014_python(pytestconfig: pytest.Config) -> Path:
    """The interpreter of a venv with `c2casgiutils[all]==0.14.0` from PyPI and what a 0.14 service tests with.

    Built with uv on first use in `<rootdir>/.venv-c2casgiutils-014-py<version>` (or
    `$C2C_TESTING_C2CASGIUTILS_014_VENV`) under a file lock, then reused while complete. A failed build is
    an error naming the command.
    """
    location = reference_venv_location(pytestconfig.rootpath)
    try:
        return ensure_c2casgiutils_014(location)
    except ReferenceEnvironmentError as error:
        message = str(error)
    pytest.fail(message, pytrace=False)


@pytest.fixture(autouse=True)
def _c2c_testing_restart_postgresql(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used `postgresql`, start it again if the test left it stopped."""
    yield
    if "postgresql" in request.fixturenames:
        for server in _SESSION_POSTGRESQL:
            _ensure_running(server)


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--native` / `--no-native`: the c2c-headers native engine (registered here so it works from any directory).

    Default: native tests run when `c2c_headers_native` is installed and are skipped otherwise;
    `--native`: a missing native engine fails them (CI); `--no-native`: they are deselected.
    """
    parser.addoption(
        "--native",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="c2c-headers: --native requires the native engine (missing = failure); --no-native deselects it; "
        "default: run it when installed, skip otherwise",
    )


def native_option(config: pytest.Config) -> bool | None:
    """The `--native` option: True, False (`--no-native`) or None (not given)."""
    value = config.getoption("native", default=None)
    return None if value is None else bool(value)


def _register_hypothesis_profiles() -> None:
    # One definition for the whole workspace: `dev` (default, fast) and `ci` (more examples), chosen
    # by HYPOTHESIS_PROFILE. No deadline: a timing threshold is a timed assertion on a shared machine.
    try:
        from hypothesis import HealthCheck, settings
    except ModuleNotFoundError:  # a test environment without Hypothesis has no property tests
        return
    # function_scoped_fixture: property tests that reset a function-scoped fixture per example (c2c-auth's
    # cookie jar) do so on purpose.
    slow = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
    settings.register_profile("dev", max_examples=60, deadline=None, suppress_health_check=slow)
    settings.register_profile("ci", max_examples=300, deadline=None, suppress_health_check=slow, print_blob=True)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def _interrupted_by_sigterm(signum: int, frame: object) -> None:
    del frame
    raise KeyboardInterrupt(f"stopped by signal {signal.Signals(signum).name}")


# The SIGTERM handler `pytest_configure` replaced, given back by `pytest_unconfigure` of the same
# configuration (an in-process pytester run inside the session leaves the handler alone).
_PREVIOUS_SIGTERM = pytest.StashKey[object]()


def _replaceable(handler: object) -> bool:
    """SIGTERM's default action, or coverage.py's handler (`sigterm = true`: its exit hook saves the data too)."""
    if handler is signal.SIG_DFL:
        return True
    owner = getattr(handler, "__self__", None)
    return type(owner).__module__.partition(".")[0] == "coverage"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the markers this plugin adds (the workspace declares them too; duplicates are fine).

    Also makes SIGTERM stop the run as Ctrl-C does (a `KeyboardInterrupt`: fixtures torn down,
    servers stopped), unless the process already handles SIGTERM otherwise than coverage.py does:
    a test run killed by a CI timeout, or by a parent script stopping a lane that ignores SIGINT,
    leaves no server behind.
    """
    for line in MARKER_HELP.values():
        config.addinivalue_line("markers", line)
    _register_hypothesis_profiles()
    if threading.current_thread() is threading.main_thread():
        current = signal.getsignal(signal.SIGTERM)
        if current is not _interrupted_by_sigterm and _replaceable(current):
            config.stash[_PREVIOUS_SIGTERM] = current
            signal.signal(signal.SIGTERM, _interrupted_by_sigterm)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give SIGTERM back the handler it had if `pytest_configure` took it."""
    previous = config.stash.get(_PREVIOUS_SIGTERM, None)
    if previous is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, previous)  # type: ignore[arg-type]  # what getsignal returned
        del config.stash[_PREVIOUS_SIGTERM]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use (`redis`, `postgresql`); deselect `native` tests under `--no-native`."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker in sorted({FIXTURE_MARKERS[name] for name in names & FIXTURE_MARKERS.keys()}):
            item.add_marker(marker)
    if native_option(config) is False:
        kept = [item for item in items if not item.get_closest_marker("native")]
        if len(kept) != len(items):
            config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("native")])
            items[:] = kept


def pytest_report_header(config: pytest.Config) -> list[str]:
    """Show which redis-server and PostgreSQL the fixtures will start."""
    lines: list[str] = []
    try:
        redis = find_executable("redis-server")
        lines.append(f"c2c-testing: {binary_version(redis)} ({redis})")
    except MissingBinaryError:
        lines.append("c2c-testing: redis-server NOT FOUND (bash scripts/install-services.sh)")
    try:
        postgres = find_postgresql_binaries().postgres
        lines.append(f"c2c-testing: {binary_version(postgres)} ({postgres})")
    except MissingBinaryError:
        lines.append("c2c-testing: PostgreSQL NOT FOUND (bash scripts/install-services.sh)")
    lines.append(_engines_line(config))
    return lines


def _engines_line(config: pytest.Config) -> str:
    option = native_option(config)
    try:
        native = importlib.import_module("c2c_headers_native")
    except ModuleNotFoundError:
        native = None
    if option is False:
        return "c2c-headers engines: python (native deselected by --no-native)"
    if native is None:
        if option:
            return "c2c-headers engines: python, native REQUIRED BUT NOT INSTALLED (tests will fail)"
        return "c2c-headers engines: python (native engine not installed)"
    return f"c2c-headers engines: python, native {getattr(native, '__version__', 'unknown version')}"
