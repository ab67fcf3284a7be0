"""``DirectTable.stage`` serialises a changelog record as Faust's own topic would (its
codecs without the per-call registry lookups), and keeps the table's data in step."""

from __future__ import annotations

from typing import Any

import faust
import pytest

from streams.state import DirectTable


@pytest.fixture
def table() -> DirectTable:
    app = faust.App("algostream-unit-direct", broker="kafka://127.0.0.1:1", store="memory://")
    return DirectTable.add(app, "book-state", 3)


@pytest.mark.parametrize(
    "value",
    [
        "1.25",
        "0E-8",
        {"book": {"instrument": "BINANCE:BTCUSDT", "last_update_id": 7, "bids": []}, "x": None},
        {"last_cause": {"record_id": "é✓", "ts_event": 2**62}},
    ],
)
def test_stage_writes_what_the_changelog_topic_would(table: DirectTable, value: Any) -> None:
    key = "BINANCE:BTCUSDT|b|27000.1"
    topic = table.changelog_topic
    name, raw_key, payload = table.stage(key, value)
    assert name == topic.get_topic_name() == "algostream-unit-direct-book-state-changelog"
    assert raw_key == topic.prepare_key(key, table.key_serializer)[0]
    assert payload == topic.prepare_value(value, table.value_serializer)[0]
    assert table.data[key] == value


def test_a_deletion_is_a_tombstone_and_the_key_cache_stays_bounded(table: DirectTable) -> None:
    table.RAW_KEYS = 2
    for i in range(5):
        table.stage(f"K|b|{i}", str(i))
    assert len(table._raw_keys) <= 2
    _, raw_key, payload = table.stage("K|b|1", None)
    assert payload is None and raw_key == b'"K|b|1"'
    assert "K|b|1" not in table.data and table.data["K|b|4"] == "4"
