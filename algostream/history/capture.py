"""The project's own capture files as history: their market-data records, typed.

Entries on md.raw, md.book, md.trades and the bars topics are decoded with the catalog's
record type; an entry that does not decode is a bad row (its line, column ``value``);
entries of other topics (orders, P&L, ...) are not history and are counted as read but
not yielded, and reported in ``stats.errors`` with keep-going: nothing unseen.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from algostream.backtest.capture import read_capture
from algostream.backtest.errors import CaptureFormatError
from algostream.history.errors import HistoryFormatError
from algostream.history.rows import ReadStats
from algostream.kafka.catalog import load_catalog
from algostream.model.errors import RecordDecodeError
from algostream.model.records import Record

HISTORY_TOPICS = ("md.raw", "md.book", "md.trades")


def read_capture_records(path: Path, stats: ReadStats) -> Iterator[Record]:
    """Typed market-data records of a capture file, in its (event-time) order."""
    where = str(path)
    catalog = load_catalog()
    try:
        for line, entry in enumerate(read_capture(path), start=2):
            stats.rows += 1
            if entry.topic not in HISTORY_TOPICS and not entry.topic.startswith("bars."):
                stats.reject(
                    HistoryFormatError(
                        where, line, "topic", f"{entry.topic!r} is not a market-data topic"
                    )
                )
                continue
            try:
                record = entry.record(catalog[entry.topic].record_type)
            except (RecordDecodeError, KeyError) as exc:
                stats.reject(HistoryFormatError(where, line, "value", str(exc)))
                continue
            stats.accept(record.ts_event)
            yield record
    except CaptureFormatError as exc:
        raise HistoryFormatError(where, exc.line, None, exc.reason) from None
