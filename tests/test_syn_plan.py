"""Tests for hilos.syn.plan: the keyed walk, its shards and the sender parts of a shard."""

from __future__ import annotations

from hilos.syn.plan import Plan
from hilos.targets import Permutation


def test_sender_parts_partition_each_shard() -> None:
    plan = Plan(39, 3, 5, None)
    total = plan.total
    whole = list(Permutation(total, 5))
    assert sorted(whole) == list(range(total))
    union: list[int] = []
    for i in range(1, 5):
        shard = list(plan.walk((i, 4)))
        parts = [list(plan.walk((i + 4 * j, 8))) for j in range(2)]  # 2 sender threads
        assert sorted(parts[0] + parts[1]) == sorted(shard)
        union += shard
    assert sorted(union) == list(range(total))  # disjoint, and together the whole job


def test_parts_of_a_shard_and_expected_counts() -> None:
    plan = Plan(10, 4, 7, (2, 3))
    parts = plan.parts(2)
    assert parts == [(2, 6), (5, 6)]
    assert sorted(i for p in parts for i in plan.walk(p)) == sorted(plan.walk())
    expected = plan.expected(10)
    assert sum(expected) == len(list(plan.walk()))
    skip = bytearray(10)
    skip[3] = 1
    skipped = Plan(10, 4, 7, (1, 1), skip)
    assert all(i // 4 != 3 for i in skipped.walk()) and skipped.expected(10)[3] == 0
