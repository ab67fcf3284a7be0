from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from algostream.kafka.catalog import load_catalog
from algostream.kafka.errors import CatalogError

REPO = Path(__file__).resolve().parents[3]
DESIGN_TOPICS = {
    "md.raw",
    "md.trades",
    "md.book",
    "md.mark_price",
    "md.liquidations",
    "book.top",
    "book.integrity",
    "bars.1s",
    "bars.1m",
    "bars.5m",
    "bars.15m",
    "bars.1h",
    "bars.4h",
    "bars.1d",
    "features",
    "signals",
    "orders.proposed",
    "orders.approved",
    "orders.rejected",
    "risk.events",
    "orders.events",
    "positions",
    "pnl",
    "control",
    "dlq",
    # shadow strategies (issue 26): paper only, never read by the venue's execution stage
    "shadow.signals",
    "shadow.orders.proposed",
    "shadow.orders.rejected",
    "shadow.orders.events",
    "shadow.positions",
    "shadow.pnl",
}
#: topics of the example agent (README "Adding your own agent"), beyond DESIGN's
EXAMPLE_TOPICS = {"alerts.volume"}


def test_catalog_lists_every_design_topic() -> None:
    assert set(load_catalog()) == DESIGN_TOPICS | EXAMPLE_TOPICS


def test_positions_are_compacted_and_market_data_is_partitioned() -> None:
    cat = load_catalog()
    assert cat["positions"].configs() == {"cleanup.policy": "compact"}
    assert cat["md.book"].partitions == cat["book.top"].partitions == cat["bars.1s"].partitions
    assert cat["md.book"].partitions > 1


def _topics_used_by_code() -> set[str]:
    """Every literal topic name passed to Edge.topic/send/ or listed as an agent input."""
    used: set[str] = set()
    for path in (REPO / "streams").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in {"topic", "send", "sources"}
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                used.add(node.args[0].value)
    return used


def test_every_topic_a_stream_agent_uses_is_in_the_catalog() -> None:
    used = _topics_used_by_code()
    assert used, "found no topic use in streams/: the scan is broken"
    assert used <= set(load_catalog()), used - set(load_catalog())


def test_bad_catalog_entry_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "t.toml"
    bad.write_text('[[topic]]\nname = "x"\nkey = "k"\nrecord = "Nope"\n')
    with pytest.raises(CatalogError, match=re.escape("record = 'Nope'")):
        load_catalog(bad)
    bad.write_text('[[topic]]\nname = "x"\nkey = "k"\nrecord = "Bar"\npartitions = 0\n')
    with pytest.raises(CatalogError, match="partitions = 0"):
        load_catalog(bad)


def test_every_live_bar_interval_has_its_topic() -> None:
    from typing import get_args

    from algostream.model.records import LiveBarInterval

    cat = load_catalog()
    assert all(f"bars.{i}" in cat for i in get_args(LiveBarInterval))
