"""redis_sentinel: a master, a replica and Sentinel, with a real failover."""

from __future__ import annotations

import pytest

from c2c_testing import RedisSentinel, RedisSentinelFactory
from c2c_testing._resp import pairs_to_dict


def _role(server_reply: object) -> bytes:
    assert isinstance(server_reply, list)
    role = server_reply[0]
    assert isinstance(role, bytes)
    return role


def test_sentinel_reports_master_and_replica(redis_sentinel: RedisSentinel) -> None:
    assert redis_sentinel.service_name == "mymaster"
    assert redis_sentinel.current_master() == redis_sentinel.master.address
    host, port = redis_sentinel.sentinels[0]
    assert redis_sentinel.sentinels_str == f"{host}:{port}"
    replicas = redis_sentinel.sentinel_servers[0].command("SENTINEL", "replicas", "mymaster")
    assert isinstance(replicas, list)
    assert [(info["ip"], int(info["port"])) for info in map(pairs_to_dict, replicas)] == [
        redis_sentinel.replica.address
    ]
    assert _role(redis_sentinel.master.command("ROLE")) == b"master"
    assert _role(redis_sentinel.replica.command("ROLE")) == b"slave"


def test_replica_follows_the_master(redis_sentinel: RedisSentinel) -> None:
    redis_sentinel.master.command("SET", "k", "v")
    assert redis_sentinel.master.command("WAIT", 1, 5000) == 1
    assert redis_sentinel.replica.command("GET", "k") == b"v"


def test_failover_swaps_the_roles(redis_sentinel: RedisSentinel) -> None:
    old_master, old_replica = redis_sentinel.master, redis_sentinel.replica
    new_address = redis_sentinel.failover(timeout=30)
    assert new_address == old_replica.address
    assert redis_sentinel.current_master() == old_replica.address
    assert (redis_sentinel.master, redis_sentinel.replica) == (old_replica, old_master)
    assert _role(old_replica.command("ROLE")) == b"master"
    assert _role(old_master.command("ROLE")) == b"slave"
    # Writes now go to the promoted node and reach the old master.
    old_replica.command("SET", "after", "failover")
    assert old_replica.command("WAIT", 1, 5000) == 1
    assert old_master.command("GET", "after") == b"failover"
    # And back again.
    assert redis_sentinel.failover(timeout=30) == old_master.address
    assert redis_sentinel.current_master() == old_master.address


@pytest.mark.slow
def test_three_sentinels_fail_over_when_the_master_dies(redis_sentinel_factory: RedisSentinelFactory) -> None:
    setup = redis_sentinel_factory(count=3, down_after_ms=1000)
    assert len(setup.sentinels_str.split(",")) == 3
    old_master, old_replica = setup.master, setup.replica
    old_master.stop()
    setup.wait_for_master(old_replica.address, timeout=30)
    assert setup.current_master() == old_replica.address
    assert _role(old_replica.command("ROLE")) == b"master"
