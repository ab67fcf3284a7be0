"""Against a real broker: metadata, catalog provisioning, idempotence, drift."""

from __future__ import annotations

from aiokafka.admin import NewTopic

from algostream.kafka.catalog import load_catalog
from algostream.kafka.clients import make_admin
from algostream.kafka.local_broker import answers_metadata
from algostream.kafka.provision import apply_catalog, describe, wait_for_topics


def test_broker_answers_metadata(kafka_bootstrap: str) -> None:
    assert answers_metadata(kafka_bootstrap)


async def test_apply_creates_every_topic_then_is_idempotent(kafka_settings) -> None:  # type: ignore[no-untyped-def]
    cat = load_catalog()
    first = await apply_catalog(cat, kafka_settings.kafka)
    assert sorted(first.created) == sorted(
        s.full_name(kafka_settings.kafka.topic_prefix) for s in cat.values()
    )
    second = await apply_catalog(cat, kafka_settings.kafka)
    assert second.created == [] and second.drift == [] and len(second.unchanged) == len(cat)
    states = await describe(
        kafka_settings.kafka,
        [
            f"{kafka_settings.kafka.topic_prefix}positions",
            f"{kafka_settings.kafka.topic_prefix}md.book",
        ],
    )
    prefix = kafka_settings.kafka.topic_prefix
    assert states[f"{prefix}positions"].configs["cleanup.policy"] == "compact"
    assert states[f"{prefix}md.book"].partitions == cat["md.book"].partitions


async def test_drift_is_reported_not_silently_changed(kafka_settings) -> None:  # type: ignore[no-untyped-def]
    prefix = kafka_settings.kafka.topic_prefix
    admin = make_admin(kafka_settings.kafka)
    await admin.start()
    try:  # an operator made md.book by hand with too few partitions and the wrong policy
        await admin.create_topics(
            [NewTopic(f"{prefix}md.book", 1, 1, topic_configs={"cleanup.policy": "compact"})]
        )
    finally:
        await admin.close()
    await wait_for_topics(kafka_settings.kafka, [f"{prefix}md.book"])
    report = await apply_catalog(load_catalog(), kafka_settings.kafka)
    assert not report.ok
    assert any("md.book" in d and "partitions 1 -> 3" in d for d in report.drift)
    assert (await describe(kafka_settings.kafka, [f"{prefix}md.book"]))[
        f"{prefix}md.book"
    ].partitions == 1
    fixed = await apply_catalog(load_catalog(), kafka_settings.kafka, fix=True)
    assert fixed.ok and any("md.book" in f for f in fixed.fixed)
    state = (await describe(kafka_settings.kafka, [f"{prefix}md.book"]))[f"{prefix}md.book"]
    assert state.partitions == 3 and state.configs["cleanup.policy"] == "delete"


async def test_min_insync_replicas_reaches_the_workers_changelog_topics(kafka_settings) -> None:  # type: ignore[no-untyped-def]
    """A changelog Faust made (compacted, no min.insync.replicas) gets it from apply and
    keeps its cleanup policy; another deployment's changelog is not touched."""
    cfg = kafka_settings.kafka
    ours = f"{cfg.app_id}-trading-risk-state-changelog"
    theirs = f"other-{cfg.app_id}-trading-risk-state-changelog"
    admin = make_admin(cfg)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, 1, 1, topic_configs={"cleanup.policy": "compact"}) for n in (ours, theirs)]
        )
    finally:
        await admin.close()
    try:
        report = await apply_catalog(load_catalog(), cfg, min_insync_replicas=1)
        assert any(line.startswith(ours) for line in report.fixed), report
        states = await describe(cfg, [ours, theirs])
        assert states[ours].configs["min.insync.replicas"] == "1"
        assert states[ours].configs["cleanup.policy"] == "compact"
        assert not any(theirs in line for line in report.fixed + report.drift)
        again = await apply_catalog(load_catalog(), cfg, min_insync_replicas=1)
        assert ours in again.unchanged and again.ok, again
    finally:
        admin = make_admin(cfg)
        await admin.start()
        try:
            await admin.delete_topics([ours, theirs])
        finally:
            await admin.close()
