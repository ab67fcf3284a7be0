"""Backtest, replay, capture and parity: the commands behind ``algostream backtest`` & co.

History comes from the topics (a time range, via offsets-for-times) or a capture file;
``replay`` re-publishes a range into another topic prefix at 1x, Nx or max speed so the
deployed agents can run against it; ``parity`` compares what the live agents wrote on a
prefix with what the in-process engine makes of the same input.
"""

from __future__ import annotations

import asyncio
import csv
import heapq
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

from algostream.backtest.capture import CaptureEntry, read_capture, write_capture
from algostream.backtest.engine import (
    BacktestEngine,
    BacktestResult,
    EncodedBook,
    EngineInput,
)
from algostream.backtest.errors import BacktestError
from algostream.backtest.report import BacktestReport, ReportInputs, write_report
from algostream.backtest.source import TopicRecord, read_range
from algostream.config import Settings
from algostream.execution.futures_venue import is_futures
from algostream.kafka.catalog import load_catalog
from algostream.kafka.clients import make_producer
from algostream.kafka.provision import apply_catalog
from algostream.model.ids import derive_id
from algostream.model.records import RECORD_TYPES, Bar, MarkPrice, OrderEvent, RawFrame, Record

MD_INPUTS = ("md.book", "md.trades")
#: futures backtests also read the mark prices (funding)
FUTURES_INPUTS = (*MD_INPUTS, "md.mark_price")
_MS = 1_000_000
#: funding times without a next row: the venue's 8 h
FUNDING_INTERVAL_NS = 8 * 3600 * 1000 * _MS


def md_inputs(settings: Settings) -> tuple[str, ...]:
    """The topics a backtest of this deployment reads (futures: with ``md.mark_price``)."""
    return FUTURES_INPUTS if is_futures(settings) else MD_INPUTS


def funding_marks(path: str | Path, venue: str = "BINANCE_USDM") -> list[MarkPrice]:
    """``md.mark_price`` records from a funding history CSV as Binance's ``GET
    /fapi/v1/fundingRate`` gives it (columns ``symbol``, ``fundingTime`` in ms,
    ``fundingRate``, ``markPrice``), in time order. Each funding time T becomes two marks:
    one just before T announcing T's rate, one at T (at or past the time: it settles),
    which is what the live gate sees on the topic. A bad row: an error naming the line."""
    rows: dict[str, list[tuple[int, Decimal, Decimal]]] = {}
    with Path(path).open(newline="") as fh:
        for n, row in enumerate(csv.DictReader(fh), start=2):
            try:
                t = int(row["fundingTime"]) * _MS
                item = (t, Decimal(row["fundingRate"]), Decimal(row["markPrice"]))
                if not item[2] > 0:
                    raise ValueError(f"markPrice {row['markPrice']!r} is not > 0")
                rows.setdefault(f"{venue}:{row['symbol'].upper()}", []).append(item)
            except (KeyError, ValueError, TypeError, AttributeError, InvalidOperation) as exc:
                raise BacktestError(f"funding history {str(path)!r} line {n}: {exc!r}") from None
    out: list[MarkPrice] = []
    for instrument, items in rows.items():
        items.sort()
        for i, (t, rate, mark) in enumerate(items):
            nxt, next_rate = items[i + 1][:2] if i + 1 < len(items) else (
                t + FUNDING_INTERVAL_NS, rate
            )  # fmt: skip
            for ts, announce_at, announced in ((t - 1, t, rate), (t, nxt, next_rate)):
                rid = derive_id("funding-history", instrument, ts)
                out.append(
                    MarkPrice(
                        instrument=instrument, ts_event=ts, ts_init=ts, record_id=rid,
                        lineage_id=rid, mark_price=mark, index_price=mark,
                        funding_rate=announced, next_funding_ns=announce_at,
                    )
                )  # fmt: skip
    return sorted(out, key=lambda m: m.ts_event)


def with_marks(inputs: Iterable[EngineInput], marks: Iterable[MarkPrice]) -> list[EngineInput]:
    """Market data and mark prices in one event-time order (both already in order)."""
    return list(heapq.merge(inputs, marks, key=lambda r: r.ts_event))


PARITY_TOPICS = ("signals", "orders.proposed", "orders.approved", "orders.events")


def decode_topic_record(rec: TopicRecord) -> Record:
    """The typed record of a topic record (by the catalog's record type)."""
    return load_catalog()[rec.topic].record_type.decode(rec.value)


def backtest_input(rec: TopicRecord) -> Record | EncodedBook:
    """A topic record as the engine's input: ``md.book`` as its bytes (the engine runs them
    through the book stage's compiled path, decoding only what that hands back), the rest
    decoded (:func:`decode_topic_record`)."""
    if rec.topic == "md.book":
        return EncodedBook(rec.ts_event, rec.value)
    return decode_topic_record(rec)


def records_from_capture(path: str | Path) -> list[Record | EncodedBook]:
    """Inputs of a capture file: md.raw frames, or md.book (as bytes: :func:`backtest_input`)
    /md.trades records."""
    out: list[Record | EncodedBook] = []
    batched = False
    for entry in read_capture(path):
        if entry.topic == "md.raw":
            frames = entry.record(RawFrame).frames()
            batched |= len(frames) > 1
            out.extend(frames)
        elif entry.topic == "md.book":
            out.append(EncodedBook(entry.event_ns, entry.value_bytes()))
        elif entry.topic in FUTURES_INPUTS:
            out.append(entry.record(load_catalog()[entry.topic].record_type))
    if batched:  # the frames of a batched md.raw record, back in the capture's time order
        out.sort(key=lambda r: r.ts_event)
    return out


def run_backtest(
    settings: Settings,
    inputs: Iterable[EngineInput],
    out_dir: Path | None,
    period_ns: int | None = None,
    close_at_end: bool = False,
) -> tuple[BacktestResult, BacktestReport | None]:
    """Run the engine; with ``out_dir`` write summary.json, equity.png, report.html.
    The last bar of each instrument closes at the end; ``close_at_end`` flattens too."""
    engine = BacktestEngine(settings)
    engine.run(inputs)
    result = engine.finish(close_positions=close_at_end)
    report = None
    if out_dir is not None and result.equity_curve:
        report = write_report(out_dir, report_inputs(settings, result, period_ns))
        for spec in settings.live_specs() if settings.signal.strategies else ():
            own = report_inputs(settings, result, period_ns, strategy=spec.id)
            if own.equity:  # (a strategy that never filled has no P&L records)
                write_report(Path(out_dir) / "strategies" / spec.id, own)
    return result, report


def report_inputs(
    settings: Settings,
    result: BacktestResult,
    period_ns: int | None = None,
    *,
    strategy: str | None = None,
) -> ReportInputs:
    """What the report needs from a run: the equity curve, the fills, returns per bar of the
    strategy's interval (``signal.bar_interval`` unless ``period_ns``), and the closes of
    the most traded instrument's bars for buy and hold. With ``strategy``: that strategy's
    own equity curve and fills (``signal.strategies``; its report is under
    ``strategies/<id>/``)."""
    from algostream.marketdata.bars import INTERVAL_NS

    interval = settings.signal.bar_interval
    fills = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    equity = result.equity_curve
    if strategy is not None:
        fills = [e for e in fills if e.strategy == strategy]
        equity = result.strategy_equity(strategy)
    traded = Counter(f.instrument for f in fills if f.fill_qty > 0)
    instrument = traded.most_common(1)[0][0] if traded else ""
    prices = [
        (bar.ts_event, bar.close)
        for bar in result.on(f"bars.{interval}")
        if isinstance(bar, Bar) and bar.instrument == instrument
    ]
    return ReportInputs(
        equity=equity,
        fills=fills,
        period_ns=period_ns or INTERVAL_NS[interval],
        title="Backtest" if strategy is None else f"Backtest: strategy {strategy}",
        prices=prices,
        price_instrument=instrument,
    )


# ---------------------------------------------------------------------- capture
async def export_capture(
    settings: Settings,
    path: Path,
    topics: Sequence[str],
    from_ns: int | None,
    to_ns: int | None,
    symbols: Sequence[str] = (),
) -> int:
    """Write a capture file of ``topics`` in [from_ns, to_ns] (optionally some symbols)."""
    wanted = {s.upper() for s in symbols}
    records = await read_range(settings.kafka, topics, from_ns, to_ns)
    entries = [
        CaptureEntry.from_kafka(r.topic, r.partition, r.offset, r.timestamp_ms, r.key, r.value)
        for r in records
        if not wanted or (r.key or b"").decode().partition(":")[2] in wanted
    ]
    write_capture(path, [entries], from_ns=from_ns, to_ns=to_ns, topics=list(topics))
    return len(entries)


async def import_capture(settings: Settings, path: Path, prefix: str | None = None) -> int:
    """Load a capture file back into topics (under ``prefix``), keys and values as they were."""
    target = settings.kafka.topic_prefix if prefix is None else prefix
    await apply_catalog(load_catalog(), settings.kafka, prefix=target)
    producer = make_producer(settings.kafka)
    await producer.start()
    n = 0
    try:
        for entry in read_capture(path):
            await producer.send(
                target + entry.topic,
                entry.value_bytes(),
                key=entry.key.encode() if entry.key is not None else None,
            )
            n += 1
        await producer.flush()
    finally:
        await producer.stop()
    return n


# ---------------------------------------------------------------------- replay
@dataclass(frozen=True)
class ReplayStats:
    records: int
    seconds: float


async def replay(
    settings: Settings,
    target_prefix: str,
    from_ns: int | None,
    to_ns: int | None,
    speed: float | None,
    topics: Sequence[str] = MD_INPUTS,
) -> ReplayStats:
    """Re-publish a range into ``target_prefix`` topics; ``speed`` None = as fast as possible."""
    records = await read_range(settings.kafka, topics, from_ns, to_ns)
    await apply_catalog(load_catalog(), settings.kafka, prefix=target_prefix)
    producer = make_producer(settings.kafka)
    await producer.start()
    start = time.monotonic()
    try:
        first = records[0].ts_event if records else 0
        for rec in records:
            if speed:
                due = start + (rec.ts_event - first) / 1e9 / speed
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing the replay clock, not waiting on I/O
            await producer.send(target_prefix + rec.topic, rec.value, key=rec.key)
        await producer.flush()
    finally:
        await producer.stop()
    return ReplayStats(len(records), time.monotonic() - start)


# ---------------------------------------------------------------------- parity
@dataclass(frozen=True)
class ParityReport:
    topic: str
    live: int
    engine: int
    first_difference: str | None


def _comparable(record: Record) -> dict[str, object]:
    """A record without the fields that carry wall-clock time of processing."""
    return record.model_dump(mode="json", exclude={"ts_init"})


def compare(topic: str, live: list[Record], engine: list[Record]) -> ParityReport:
    """Compare by record id (order between partitions is not part of the contract)."""
    live_by = {r.record_id: _comparable(r) for r in live}
    eng_by = {r.record_id: _comparable(r) for r in engine}
    first = None
    for rid in sorted(set(live_by) | set(eng_by)):
        a, b = live_by.get(rid), eng_by.get(rid)
        if a != b:
            first = f"{topic} {rid}:\n  live:   {a}\n  engine: {b}"
            break
    return ParityReport(topic, len(live_by), len(eng_by), first)


async def parity(
    settings: Settings,
    from_ns: int | None = None,
    to_ns: int | None = None,
    topics: Sequence[str] = PARITY_TOPICS,
) -> list[ParityReport]:
    """Live agents' outputs on the configured prefix vs the engine on the same input."""
    inputs = [
        backtest_input(r) for r in await read_range(settings.kafka, MD_INPUTS, from_ns, to_ns)
    ]
    result = BacktestEngine(settings).run(inputs)
    reports = []
    for topic in topics:
        live = [
            RECORD_TYPES[load_catalog()[topic].record].decode(r.value)
            for r in await read_range(settings.kafka, [topic])
        ]
        reports.append(compare(topic, live, result.on(topic)))
    return reports
