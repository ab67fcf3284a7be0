"""The Kafka broker stopped for 30 s and started again while the simulator, the ingestor
and the market worker run (real processes).

The shared test broker is left alone: this test runs its own :class:`LocalBroker` (the
already fetched jars, data and logs under ``tmp_path``, a free port) and points every
process at it.

Promises checked:

* the ingestor keeps reading the exchange during the outage and buffers in order; it
  reports the stall (log + ``algostream_publisher_*`` metrics) and its recovery;
* nothing is lost and nothing is duplicated: what the ingestor says it published per
  topic (its ``algostream_messages_out_total``) equals what it says was delivered and
  what is on the topic, record ids are unique, the simulator's trade ids have no hole;
* order is kept: ``md.book`` update ids strictly increase per partition and the chain
  needs no resync (no snapshot after the first), so the idempotent producer's own
  in-order retries did the work;
* the market worker's consumers resume: its book equals the simulator's true book.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from algostream.config import Settings, load_settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.local_broker import LocalBroker
from algostream.kafka.provision import apply_catalog
from algostream.model import BookUpdate, RawFrame, TradeTick
from algostream.model.enums import BookUpdateKind
from tests.faults.feed_kit import (
    assert_book_is_true,
    chain_breaks,
    holes,
    logs,
    md_trades,
    poll,
    scrape,
    start_pipeline,
    trade_ids,
    wait_live,
)
from tests.kafka_kit import decoded, free_port, read_until

REPO = Path(__file__).resolve().parents[2]
OUTAGE_S = 30.0
TOPICS = {"md.raw": RawFrame, "md.trades": TradeTick, "md.book": BookUpdate}


def _free_pair() -> int:
    """A port whose successor (the controller port) is free too."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise AssertionError("no two consecutive free ports")


@pytest.fixture()
def own_broker(tmp_path: Path, kafka_env: dict[str, str]) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path / "broker", port=_free_pair(), libs=REPO / ".kafka" / "libs")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def metric(values: dict[str, float], name: str, **labels: str) -> float:
    """One sample of a scrape (the publisher's series carry ``client``); 0 when absent."""
    if name.startswith("algostream_publisher"):
        labels = {"client": "algostream", **labels}
    if name.startswith("algostream_messages_out"):
        labels = {"agent": "ingestor", **labels}
    parts = [f'{k}="{v}"' for k, v in labels.items()]
    for key, value in values.items():
        if key.startswith(name + "{") and all(part in key for part in parts):
            return value
    return 0.0


async def test_broker_down_30s_nothing_lost_duplicated_or_reordered(
    own_broker: LocalBroker, supervisor: Any, kafka_env: dict[str, str]
) -> None:
    env = {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": own_broker.bootstrap,
        # the feed itself is healthy all along: no silence detection during the test
        "ALGOSTREAM__MARKET_DATA__STALE_AFTER_MS": "120000",
    }
    s: Settings = load_settings(env=kafka_env | env)
    report = await apply_catalog(load_catalog(), s.kafka)
    assert report.ok, report.drift
    p = start_pipeline(supervisor, ("market",), env=env)
    await wait_live(s, supervisor)
    await poll(lambda: md_trades(s, 0.5), 30, "trades on md.trades")
    port = p.metrics["ingest"]

    # ---- the outage: the broker is away for OUTAGE_S; the feed keeps running
    await asyncio.to_thread(own_broker.stop)
    loop = asyncio.get_running_loop()
    back_at = loop.time() + OUTAGE_S
    pending: list[float] = []
    while loop.time() < back_at:  # watch the processes for the length of the outage
        values = await scrape(port)
        pending.append(metric(values, "algostream_publisher_pending_records"))
        assert not supervisor.dead(), logs(supervisor)
        await asyncio.sleep(min(1.0, max(back_at - loop.time(), 0)))
    stalled = await scrape(port)
    assert metric(stalled, "algostream_publisher_stalls_total") >= 1, stalled
    assert metric(stalled, "algostream_publisher_oldest_pending_seconds") >= OUTAGE_S - 10
    # buffering, in the ingestor's memory, growing all along (the first scrape can come
    # before the first record the broker did not take)
    assert pending[-1] > pending[len(pending) // 2] > 0, pending
    await asyncio.to_thread(own_broker.start)

    # ---- recovery: every buffered record delivered, the stall reported as over
    async def drained() -> bool:
        values = await scrape(port)
        return metric(values, "algostream_publisher_pending_records") == 0 and bool(
            metric(values, "algostream_publisher_delivered_total", topic="md.book")
        )

    await poll(drained, 120, "the ingestor's buffer delivered")
    ingest_log = supervisor.children["ingest"].log
    assert "kafka delivery stalled" in ingest_log.read_text()
    await poll(lambda: "kafka delivery recovered" in ingest_log.read_text(), 10, "recovery log")

    # ---- a consistent cut: market paused, everything published is delivered
    async with httpx.AsyncClient(base_url=p.sim_url) as http:
        (await http.post("/sim/pause")).raise_for_status()

    published: dict[str, float] = {}

    async def settled() -> bool:
        nonlocal published
        values = await scrape(port)
        now = {t: metric(values, "algostream_messages_out_total", topic=t) for t in TOPICS}
        done = {t: metric(values, "algostream_publisher_delivered_total", topic=t) for t in TOPICS}
        stable, published = now == published, now
        failed = metric(values, "algostream_publisher_failed_total", topic="md.book")
        assert failed == 0, values
        return stable and now == done

    await poll(settled, 60, "the ingestor idle with everything delivered", interval_s=1.0)
    for topic, record_type in TOPICS.items():
        want = int(published[topic])
        msgs = await read_until(s, topic, lambda m: False, timeout_s=2)
        records = decoded(msgs, record_type)
        ids = [r.record_id for r in records]
        assert len(ids) == len(set(ids)), f"{topic}: duplicates"
        assert len(records) == want, (topic, len(records), want)

    book_msgs = await read_until(s, "md.book", lambda m: False, timeout_s=2)
    by_partition: dict[int, list[BookUpdate]] = {}
    for m in book_msgs:
        by_partition.setdefault(m.partition, []).append(BookUpdate.decode(m.value))  # type: ignore[arg-type]
    for updates in by_partition.values():
        finals = [u.final_update_id for u in updates]
        assert finals == sorted(set(finals)), "md.book reordered or duplicated"
        assert not chain_breaks(updates), chain_breaks(updates)
        assert [u.kind for u in updates].count(BookUpdateKind.SNAPSHOT) == 1, "a resync"
    ids = trade_ids(await md_trades(s))
    assert ids == sorted(set(ids)) and not holes(ids), holes(ids)

    # ---- the market worker's consumers resumed: its book is the true book
    await assert_book_is_true(s, p, supervisor, timeout_s=90)
    supervisor.stop("ingest")
    last = [
        json.loads(line)
        for line in supervisor.children["ingest"].log.read_text().splitlines()
        if "ingestor stopped" in line and line.startswith("{")
    ]
    assert last and last[-1]["failed"] == 0 and last[-1]["published"] == last[-1]["delivered"]
    assert not [n for n in supervisor.dead() if n != "ingest"], logs(supervisor)
