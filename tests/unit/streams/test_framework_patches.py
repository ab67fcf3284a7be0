"""The private faust-streaming/aiokafka names the patches rely on still exist, and each
patch does what it says. An upgrade that renames one fails here, not in production."""

from __future__ import annotations

import importlib
import inspect
import logging
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer

from streams import framework

INSTANCE_ONLY = {  # set in __init__: checked on a fresh instance
    "Consumer._read_offset",
    "AIOKafkaConsumer._fetch_max_wait_ms",
    "AIOKafkaConsumer._isolation_level",
    "AIOKafkaConsumer._fetcher",
    "Fetcher._fetch_max_wait_ms",
    "TableManager.recovery",
    "AIOKafkaProducer._txn_manager",
    "TransactionManager._transaction_waiter",
    "TransactionManager.state",
}


@pytest.mark.parametrize(("module", "path"), framework.RELIED_ON)
def test_every_relied_on_name_exists(module: str, path: str) -> None:
    owner: Any = importlib.import_module(module)
    *parents, name = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    if path in INSTANCE_ONLY:
        return  # checked below on instances
    assert hasattr(owner, name), f"{module}.{path} is gone: review streams/framework.py"


async def test_instance_attributes_the_patches_set_exist() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    assert isinstance(consumer._fetch_max_wait_ms, int)
    assert consumer._isolation_level == "read_uncommitted"
    assert consumer._fetcher is None  # made at start(), with the consumer's fetch wait
    from aiokafka.consumer.fetcher import Fetcher

    assert "self._fetch_max_wait_ms = fetch_max_wait_ms" in inspect.getsource(Fetcher.__init__)
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers="127.0.0.1:1", transactional_id="check")
    manager = producer._txn_manager
    assert manager is not None and manager.state is not None
    assert hasattr(manager, "_transaction_waiter")
    import faust

    app = faust.App("framework-check", broker="kafka://127.0.0.1:1")
    assert hasattr(app.tables, "recovery")
    framework.install()
    assert isinstance(app.consumer._read_offset, dict)  # a ReadOffsets, pinnable
    assert type(app.consumer._read_offset).__name__ == "ReadOffsets"


def test_install_is_idempotent() -> None:
    from faust.transport.consumer import Consumer
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    framework.install()
    patched = (Consumer.resume_partitions, AIOKafkaConsumerThread.verify_event_path)
    framework.install()
    assert (Consumer.resume_partitions, AIOKafkaConsumerThread.verify_event_path) == patched


def test_held_topics_are_never_reported_as_not_processing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The false "Stream has not started processing" ERROR: Faust's check is skipped for
    a held topic and still runs for the others."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    framework.install()
    calls: list[str] = []

    class Probe:  # what the original check would have looked at
        app = SimpleNamespace(_algostream_held={"pfx.md.trades"})

        def _verify_aiokafka_event_path(self, now: float, tp: Any) -> bool:
            calls.append(tp.topic)
            return True  # "already logged": the rest of the original is not reached

    verify = AIOKafkaConsumerThread.verify_event_path
    with caplog.at_level(logging.ERROR):
        verify(Probe(), 0.0, SimpleNamespace(topic="pfx.md.trades", partition=0))
        verify(Probe(), 0.0, SimpleNamespace(topic="pfx.book.top", partition=0))
    assert calls == ["pfx.book.top"]


async def test_faust_fetches_idle_only_when_it_reads_nothing_after_recovery() -> None:
    """The long fetch wait applies from a rebalance's end (tables recovered) when every
    topic Faust assigned is held, a changelog or the leader topic; the short one again at
    the next rebalance's start, and for a worker whose Faust agents read a topic."""
    from aiokafka import TopicPartition as tp

    fetcher = SimpleNamespace(_fetch_max_wait_ms=framework.FETCH_MAX_WAIT_MS)
    completed: list[Any] = []
    revoking: list[Any] = []
    assigned = {
        tp(topic="p.md.trades", partition=0),
        tp(topic="app-market-book-state-changelog", partition=0),
        tp(topic="app-market-__assignor-__leader", partition=0),
    }
    app = SimpleNamespace(
        _algostream_faust_consumer=SimpleNamespace(_fetcher=fetcher),
        consumer=SimpleNamespace(assignment=lambda: assigned),
        tables=SimpleNamespace(changelog_topics={"app-market-book-state-changelog"}),
        conf=SimpleNamespace(id="app-market"),
        on_rebalance_complete=SimpleNamespace(connect=completed.append),
    )
    edge = SimpleNamespace(held={"p.md.trades"}, before_revoke=revoking.append)
    framework.idle_faust_fetches(app, edge)
    await completed[0](app)
    assert fetcher._fetch_max_wait_ms == framework.IDLE_FETCH_WAIT_MS
    await revoking[0]()
    assert fetcher._fetch_max_wait_ms == framework.FETCH_MAX_WAIT_MS
    assigned.add(tp(topic="p.orders.proposed", partition=0))  # a Faust agent's input
    await completed[0](app)
    assert fetcher._fetch_max_wait_ms == framework.FETCH_MAX_WAIT_MS
    assert not framework.faust_fetch_wait(SimpleNamespace(), 1)  # not started: no fetcher
