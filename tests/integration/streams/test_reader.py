"""The batch readers continue from their worker's Faust group when their own has no offsets.

An upgraded worker whose ``book.top`` and ``md.trades`` were read by Faust agents starts
its tap reader in a new group: without the Faust group's offsets it would replay every
retained top and trade into the paper broker (resting orders filled against old prices).
"""

from __future__ import annotations

import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from algostream.kafka.clients import client_kwargs
from streams.reader import group_offsets
from streams.reader_clients import reader_client


async def test_group_offsets_are_the_groups_commits_only(provisioned) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    name = s.kafka.topic_prefix + "book.top"
    tps = [TopicPartition(name, p) for p in range(3)]
    group = f"{s.kafka.app_id}-trading"
    committer = AIOKafkaConsumer(**client_kwargs(s.kafka), group_id=group, enable_auto_commit=False)
    await committer.start()
    try:
        committer.assign(tps)
        await committer.commit({tps[0]: 5, tps[2]: 7})  # partition 1: never committed
    finally:
        await committer.stop()
    assert await group_offsets(s.kafka, group, tps) == {tps[0]: 5, tps[2]: 7}
    assert await group_offsets(s.kafka, f"{group}-never-used", tps) == {}


@pytest.mark.parametrize("rdkafka", [False, True], ids=["aiokafka", "rdkafka"])
async def test_reader_client_reads_commits_and_starts_again_exactly(provisioned, rdkafka) -> None:  # type: ignore[no-untyped-def]
    """Each client under the market reader (``kafka.reader_client``): starts at the given
    offsets (None: the log start), hands out each partition's records in offset order,
    nothing of a partition once unassigned, commits in its own group, and a new client of
    the group starts exactly where the commit says."""
    s = provisioned
    name = s.kafka.topic_prefix + "md.book"
    tps = [TopicPartition(name, p) for p in range(3)]
    producer = AIOKafkaProducer(**client_kwargs(s.kafka))
    await producer.start()
    try:
        for i in range(300):
            await producer.send(name, b"v%d" % i, key=b"k", partition=i % 3)
        await producer.flush()
    finally:
        await producer.stop()
    group = f"{s.kafka.app_id}-book"

    def client():  # type: ignore[no-untyped-def]
        return reader_client(
            s.kafka, rdkafka=rdkafka, group_id=group, client_id="t", fetch_max_wait_ms=10
        )

    async def read(c, want: int) -> dict[TopicPartition, list[tuple[int, bytes]]]:  # type: ignore[no-untyped-def]
        got: dict[TopicPartition, list[tuple[int, bytes]]] = {}
        deadline = time.monotonic() + 30
        while sum(map(len, got.values())) < want and time.monotonic() < deadline:
            for tp, recs in (await c.getmany(timeout_ms=200, max_records=50)).items():
                got.setdefault(tp, []).extend((r.offset, r.value) for r in recs)
        return got

    first = client()
    await first.start()
    try:
        assert await first.committed(tps) == dict.fromkeys(tps)
        start = await first.begin({tps[0]: None, tps[1]: 40, tps[2]: None})
        assert start == {tps[0]: 0, tps[1]: 40, tps[2]: 0}
        assert await first.end_offsets(tps) == dict.fromkeys(tps, 100)
        got = await read(first, 260)
        assert {tp: [o for o, _ in recs] for tp, recs in got.items()} == {
            tps[0]: list(range(100)),
            tps[1]: list(range(40, 100)),
            tps[2]: list(range(100)),
        }
        assert got[tps[1]][0] == (40, b"v121")  # partition 1 holds 1, 4, 7, ...
        deadline = time.monotonic() + 10
        while (
            first.fetched_at_ns(tps[0]) is None or first.highwater(tps[0]) is None
        ) and time.monotonic() < deadline:
            await first.getmany(timeout_ms=50, max_records=1)
        assert first.highwater(tps[0]) == 100
        fetched = first.fetched_at_ns(tps[0])
        assert fetched is not None and abs(fetched - time.time_ns()) < 5e9
        await first.commit({tps[0]: 100, tps[1]: 70})
        await first.unassign()
        assert first.fetched_at_ns(tps[0]) is None and first.highwater(tps[0]) is None
        assert await first.getmany(timeout_ms=100, max_records=50) == {}
    finally:
        await first.stop()

    second = client()
    await second.start()
    try:
        committed = await second.committed(tps)
        assert committed == {tps[0]: 100, tps[1]: 70, tps[2]: None}
        await second.begin(committed)
        got = await read(second, 130)
        assert {tp: [o for o, _ in recs][:1] for tp, recs in got.items()} == {
            tps[1]: [70],
            tps[2]: [0],
        }
        assert sum(map(len, got.values())) == 130
    finally:
        await second.stop()


@pytest.mark.parametrize("rdkafka", [False, True], ids=["aiokafka", "rdkafka"])
async def test_reader_client_hands_out_a_quiet_partitions_record_at_once(
    provisioned, rdkafka
) -> None:  # type: ignore[no-untyped-def]
    """A record on a quiet partition is handed out as soon as it is fetched, not when a
    batch fills or the wait ends (librdkafka's ``consume`` with a timeout waited for a
    whole batch: ~100 ms median on the market reader's 200 ms wait)."""
    s = provisioned
    name = s.kafka.topic_prefix + "md.book"
    tps = [TopicPartition(name, p) for p in range(3)]
    c = reader_client(
        s.kafka,
        rdkafka=rdkafka,
        group_id=f"{s.kafka.app_id}-lat",
        client_id="t",
        fetch_max_wait_ms=10,
    )
    producer = AIOKafkaProducer(**client_kwargs(s.kafka))
    await producer.start()
    await c.start()
    delays: list[float] = []
    try:
        await c.begin(dict.fromkeys(tps))
        for i in range(20):
            sent = time.monotonic()
            await (await producer.send(name, b"x", partition=i % 3))
            got: dict[TopicPartition, list[object]] = {}
            while not got and time.monotonic() - sent < 5:
                got = await c.getmany(timeout_ms=200, max_records=500)
            assert got, "record not handed out within 5 s"
            delays.append(time.monotonic() - sent)
    finally:
        await c.stop()
        await producer.stop()
    assert sorted(delays)[len(delays) // 2] < 0.05, delays
