"""StageState: one save/restore protocol for a stage's state; each key in its
instrument's partition, whichever task writes it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiokafka.partitioner import DefaultPartitioner

from algostream.config import load_settings
from streams.app import create_app
from streams.state import StageState

INSTRUMENTS = [
    "BINANCE:BTCUSDT",
    "BINANCE:ETHUSDT",
    "COINBASE:BTC-USD",
    "SIM:X",
    "BINANCE_USDM:BTCUSDT",
]


def state(tmp_path: Path) -> tuple[StageState, list[tuple[Any, ...]]]:
    settings = load_settings(env={"ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path)})
    app, edge = create_app(settings, "state-test", web_enabled=False)
    sent: list[tuple[Any, ...]] = []

    async def send_raw(*args: Any) -> None:
        sent.append(args)

    edge.send_raw = send_raw  # type: ignore[assignment, method-assign]
    return StageState.add(app, edge, "test-state", "md.trades"), sent


def test_a_key_goes_to_the_partition_the_producer_gives_its_instrument(tmp_path: Path) -> None:
    s, _ = state(tmp_path)
    parts = list(range(s.partitions))
    assert s.partitions == 3
    for inst in INSTRUMENTS:
        assert s.partition(inst) == DefaultPartitioner()(inst.encode(), parts, parts), inst
    assert len({s.partition(i) for i in INSTRUMENTS}) > 1  # not one partition for all


async def test_save_writes_the_changelog_to_the_instruments_partition(tmp_path: Path) -> None:
    s, sent = state(tmp_path)
    await s.save("1s|BINANCE:ETHUSDT", {"v": 1}, "BINANCE:ETHUSDT")
    await s.save("BINANCE:BTCUSDT", {"v": 2})
    changelog = s.table.changelog_topic.get_topic_name()
    assert [(args[0], args[1], args[3]) for args in sent] == [
        (changelog, b'"1s|BINANCE:ETHUSDT"', s.partition("BINANCE:ETHUSDT")),
        (changelog, b'"BINANCE:BTCUSDT"', s.partition("BINANCE:BTCUSDT")),
    ]
    assert s.get("BINANCE:BTCUSDT") == {"v": 2}


async def test_a_key_is_restored_once_per_ownership(tmp_path: Path) -> None:
    s, _ = state(tmp_path)
    await s.save("BINANCE:BTCUSDT", {"v": 2})
    assert s.restore("BINANCE:BTCUSDT") == {"v": 2}
    assert s.restore("BINANCE:BTCUSDT") is None  # the stage holds it in memory now
    assert s.restore("SIM:X") is None  # nothing saved
    await s.forget()  # a rebalance
    assert s.restore("BINANCE:BTCUSDT") == {"v": 2}
