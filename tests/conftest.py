"""Shared fixtures. Integration tests get a real Kafka broker:

1. ``KAFKA_BOOTSTRAP`` if set (any running cluster);
2. else, with ``ALGOSTREAM_TEST_BROKER=testcontainers``, a testcontainers Kafka container
   (opt-in: a Docker engine answering says nothing about whether its registry can be
   reached to pull the image; `make test` runs one for the compose test, without one);
3. else the local broker under ``.kafka/`` (started here if ``make broker`` has not).

There is no fourth option: if none of them gives a broker the fixture fails, it never skips.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def _testcontainers_asked() -> bool:
    return os.environ.get("ALGOSTREAM_TEST_BROKER", "").strip().lower() == "testcontainers"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """The bootstrap address of a real broker (see module docstring)."""
    if os.environ.get("KAFKA_BOOTSTRAP"):
        yield os.environ["KAFKA_BOOTSTRAP"]
        return
    if _testcontainers_asked():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer("apache/kafka:3.9.1").with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    from algostream.kafka.local_broker import LocalBroker

    broker = LocalBroker(REPO / ".kafka", port=int(os.environ.get("ALGOSTREAM_BROKER_PORT", 9092)))
    started_here = not broker.status().running
    status = broker.start()
    yield status.bootstrap
    if started_here and not os.environ.get("ALGOSTREAM_KEEP_BROKER"):
        broker.stop()


@pytest.fixture()
def topic_prefix() -> str:
    """A fresh topic-name prefix so each test owns its topics."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture()
def kafka_env(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> dict[str, str]:
    """Environment overrides pointing at the test broker, isolated topics and data dir."""
    return {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": kafka_bootstrap,
        "ALGOSTREAM__KAFKA__TOPIC_PREFIX": topic_prefix,
        "ALGOSTREAM__KAFKA__APP_ID": f"test-{topic_prefix.rstrip('.')}",
        "ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path / "data"),
    }


@pytest.fixture()
def kafka_settings(kafka_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Settings pointing at the test broker with an isolated topic prefix and data dir."""
    from algostream.config import load_settings

    return load_settings(env=kafka_env)


@pytest.fixture()
async def provisioned(kafka_settings):  # type: ignore[no-untyped-def]
    """Settings whose prefixed catalog topics exist on the broker; the test's topics (the
    catalog's and its workers' table changelogs) are deleted after it.

    Without the clean-up a whole run leaves thousands of topics on one broker, and the
    local broker's small heap ends up in back-to-back full GCs (~0.5 s pauses each,
    measured with ``jstat``), which slows every later test."""
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.provision import apply_catalog

    report = await apply_catalog(load_catalog(), kafka_settings.kafka)
    assert report.ok, report.drift
    yield kafka_settings
    try:  # best effort: a test may have stopped or replaced its broker
        await asyncio.wait_for(_delete_topics(kafka_settings.kafka), timeout=20)
    except Exception as exc:  # clean-up must not fail the test
        print(f"could not delete the test's topics: {exc!r}")


async def _delete_topics(cfg) -> None:  # type: ignore[no-untyped-def]
    from algostream.kafka.provision import delete_run_topics

    if not cfg.topic_prefix or not cfg.app_id.startswith("test-"):
        return  # only a test's own prefix and app id, never a shared broker's topics
    await delete_run_topics(cfg)


@pytest.fixture()
def supervisor(tmp_path: Path, kafka_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Start ``algostream ...`` child processes against the test broker; all stopped after."""
    from algostream.supervisor import Supervisor

    sup = Supervisor(tmp_path / "logs", env=kafka_env)
    yield sup
    sup.stop_all()
