"""Cluster mode (`C2C__REDIS__CLUSTER`): the settings it needs, and the factory's clients on a real local cluster."""

# mypy: disallow-untyped-calls=False

from __future__ import annotations

import asyncio

import pytest
import redis

from c2c_config import ConfigError, CoreSettings, RedisSettings
from c2c_config.redis import CLUSTER_MIN_REDIS_PY, RedisFactory, redis_py_version
from c2c_testing import RedisCluster, key_slot

CLUSTER_CAPABLE = redis_py_version() >= CLUSTER_MIN_REDIS_PY


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"C2C__REDIS__CLUSTER": "true"}, "C2C__REDIS__URL must name one node"),
        (
            {"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__SENTINELS": "h:26379", "C2C__REDIS__SERVICENAME": "m"},
            "exclude each other",
        ),
        ({"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__URL": "redis://h:7000/3"}, "only database 0"),
        ({"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__URL": "redis://h:7000?db=3"}, "only database 0"),
        (
            {"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__URL": "redis://h:7000", "C2C__REDIS__DB": "2"},
            "only database 0",
        ),
        ({"C2C__REDIS__CLUSTER": "true", "C2C__REDIS__URL": "unix:///run/redis.sock"}, "over TCP"),
    ],
)
def test_cluster_settings_refuse_what_a_cluster_cannot_do(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str], message: str
) -> None:
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        CoreSettings()


def test_cluster_settings_accept_a_node_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("C2C__REDIS__CLUSTER", "true")
    monkeypatch.setenv("C2C__REDIS__URL", "rediss://:secret@node-1:7000/0")
    settings = CoreSettings().redis
    assert settings.cluster
    assert settings.configured
    assert not RedisSettings().cluster  # off by default


def test_redis_py_version_parses_the_installed_version() -> None:
    assert redis_py_version()[:2] == tuple(int(part) for part in redis.__version__.split(".")[:2])


def test_an_old_redis_py_is_refused_with_the_version_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    # Really older in the redis-py floor run (5.2); elsewhere the installed version is made to read 7.4.
    if CLUSTER_CAPABLE:
        monkeypatch.setattr(redis, "__version__", "7.4.0")
    with pytest.raises(RuntimeError, match=r"redis-py 8\.0 or later .* pip install 'redis>=8'"):
        RedisFactory(RedisSettings(url="redis://127.0.0.1:7000", cluster=True))
    RedisFactory(RedisSettings(url="redis://127.0.0.1:7000"))  # a single Redis needs no particular version


@pytest.mark.skipif(not CLUSTER_CAPABLE, reason="cluster mode needs redis-py 8 (the floor run checks the refusal)")
async def test_cluster_mode_reaches_every_shard(redis_cluster: RedisCluster, factories: list[RedisFactory]) -> None:
    factory = RedisFactory(RedisSettings(url=redis_cluster.url, cluster=True))
    factories.append(factory)
    assert factory.mode == "cluster"
    assert factory.cluster
    assert factory.describe().endswith("(cluster)")
    assert factory.sentinel() is None
    master = factory.master()
    assert isinstance(master, redis.asyncio.RedisCluster)
    assert factory.replica() is master
    assert isinstance(factory.subscriber(), redis.asyncio.RedisCluster)
    assert factory.subscriber() is not master
    # Keys on every shard: the client follows the slots (a plain client would get MOVED).
    keys = [f"key-{n}" for n in range(30)]
    owners = {redis_cluster.master_for_key(key).port for key in keys}
    assert len(owners) == 3
    for key in keys:
        await master.set(key, key.upper())
    for key in keys:
        assert await master.get(key) == key.upper()
        assert redis_cluster.master_for_key(key).command("GET", key) == key.upper().encode()


@pytest.mark.skipif(not CLUSTER_CAPABLE, reason="cluster mode needs redis-py 8")
async def test_cluster_client_follows_a_master_s_failover(
    redis_cluster: RedisCluster, factories: list[RedisFactory]
) -> None:
    factory = RedisFactory(RedisSettings(url=redis_cluster.url, cluster=True, timeout="PT1S"))  # type: ignore[arg-type]
    factories.append(factory)
    master = factory.master()
    assert master is not None
    key = "{failover}-key"
    await master.set(key, "before")
    owner = redis_cluster.master_for_key(key)
    assert owner.command("WAIT", 1, 5000) == 1
    await asyncio.to_thread(redis_cluster.kill_master, owner)
    assert redis_cluster.master_for_key(key) is not owner
    # The first commands may fail while the client learns the new topology; then they succeed.
    value = None
    for _ in range(50):
        try:
            value = await master.get(key)
            await master.set(key, "after")
            break
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.ClusterError):
            await asyncio.sleep(0.2)
    assert value == "before"
    assert await master.get(key) == "after"
    assert key_slot(key) == key_slot("{failover}")
