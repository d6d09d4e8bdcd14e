"""redis_cluster: three masters with a replica each, a real failover, and the slot arithmetic."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from c2c_testing import RedisCluster, RespError, key_slot, parse_cluster_nodes
from c2c_testing._resp import as_text


def test_cluster_has_three_masters_each_with_a_linked_replica(redis_cluster: RedisCluster) -> None:
    masters = redis_cluster.masters()
    assert len(masters) == 3
    assert len(redis_cluster.nodes) == 6
    for master in masters:
        replicas = redis_cluster.replicas_of(master)
        assert len(replicas) == 1
        role = replicas[0].command("ROLE")
        assert isinstance(role, list)
        assert role[0] == b"slave"
        assert role[2] == master.port
        assert redis_cluster.replicas_of(replicas[0]) == []  # a replica has none
    covered = sorted(slots for entry in redis_cluster.topology() if entry.is_master for slots in entry.slots)
    assert covered[0][0] == 0
    assert covered[-1][1] == 16383
    assert sum(last - first + 1 for first, last in covered) == 16384


def test_key_slot_matches_the_server(redis_cluster: RedisCluster) -> None:
    node = redis_cluster.nodes[0]
    for key in ("foo", "{user1000}.following", "a{}b", "{}x{y}", "broadcast_api_{echo}", "x{a}{b}", "é"):
        assert key_slot(key) == node.command("CLUSTER", "KEYSLOT", key), key
    # A key is served by the master the client is sent to; another master answers MOVED.
    owner = redis_cluster.master_for_key("foo")
    owner.command("SET", "foo", "bar")
    other = next(master for master in redis_cluster.masters() if master is not owner)
    with pytest.raises(RespError) as error:
        other.command("GET", "foo")
    assert error.value.code == "MOVED"


@given(st.binary(max_size=40))
def test_key_slot_of_a_hash_tag_is_the_tag_s_slot(tag: bytes) -> None:
    slot = key_slot(b"prefix{" + tag + b"}suffix")
    if tag and b"}" not in tag:
        assert slot == key_slot(tag)
    assert 0 <= slot < 16384


def test_parse_cluster_nodes_reads_flags_masters_and_slot_ranges() -> None:
    text = (
        "07c3 127.0.0.1:30004@40004 slave e7d1 0 1426238317239 4 connected\n"
        "e7d1 127.0.0.1:30001@40001,host myself,master - 0 0 1 connected 0-5460 [5461->-abc]\n"
        "67ed 127.0.0.1:30002@40002 master,fail - 1426238316232 1426238315000 2 connected 5461-10922 12000\n"
    )
    nodes = parse_cluster_nodes(text)
    assert [node.address for node in nodes] == [("127.0.0.1", 30004), ("127.0.0.1", 30001), ("127.0.0.1", 30002)]
    assert nodes[0].master_id == "e7d1"
    assert not nodes[0].is_master
    assert nodes[1].is_master
    assert nodes[1].slots == ((0, 5460),)
    assert nodes[2].failed
    assert nodes[2].slots == ((5461, 10922), (12000, 12000))


def test_killed_master_is_replaced_by_its_replica_and_rejoins(redis_cluster: RedisCluster) -> None:
    owner = redis_cluster.master_for_key("{k}")
    owner.command("SET", "{k}", "v")
    assert owner.command("WAIT", 1, 5000) == 1
    started = time.monotonic()
    promoted = redis_cluster.kill_master(owner)
    assert time.monotonic() - started < 20
    assert promoted is not owner
    assert redis_cluster.master_for_key("{k}") is promoted
    assert promoted.command("GET", "{k}") == b"v"
    redis_cluster.restart(owner)
    role = owner.command("ROLE")
    assert isinstance(role, list)
    assert role[0] == b"slave"
    assert len(redis_cluster.masters()) == 3


def test_manual_failover_swaps_roles(redis_cluster: RedisCluster) -> None:
    owner = redis_cluster.master_for_key("x")
    replica = redis_cluster.failover(owner)
    assert redis_cluster.master_for_key("x") is replica
    assert "cluster_state:ok" in as_text(owner.command("CLUSTER", "INFO"))
