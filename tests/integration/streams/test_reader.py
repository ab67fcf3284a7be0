"""The batch readers continue from their worker's Faust group when their own has no offsets.

An upgraded worker whose ``book.top`` and ``md.trades`` were read by Faust agents starts
its tap reader in a new group: without the Faust group's offsets it would replay every
retained top and trade into the paper broker (resting orders filled against old prices).
"""

from __future__ import annotations

from aiokafka import AIOKafkaConsumer, TopicPartition

from algostream.kafka.clients import client_kwargs
from streams.reader import group_offsets


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
