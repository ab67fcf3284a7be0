"""Bar agent: ``md.trades`` -> open bars table -> ``bars.1s`` / ``bars.1m`` (event time).

One :class:`~algostream.marketdata.bars.BarAggregator` per instrument and interval; a bar
closes when a trade of a later bucket arrives, or, for a live feed, when the wall clock
passes the bucket end plus a grace period (a replay of old history is closed by its own
trades only, so it never races the wall clock). Late trades (older than the open bar) go
to ``dlq`` with the reason rather than being dropped silently.

``md.trades`` is read by the worker's batch reader (:mod:`streams.reader`), not a Faust
agent: the trades of a batch are applied in order and each changed bar state is written
once per batch (``bars-state`` is a :class:`~streams.state.DirectTable`).

The wall clock closes a bar only when the worker has read everything on the trade's
partition: a backlog (a worker starting late, or taking a partition over after a
rebalance or a crash) is closed by its own trades, so its trades are never late against
the wall clock. The watermark is the wall time of the reader's last fetch response for
the partition minus the grace period: a worker that stalls (CPU, a rebalance) does not
close a bar whose trades are on the broker but not yet fetched.

Each saved bar state holds the partition and offset of its last trade, so a trade
delivered again (after a crash or a rebalance, before its offset was committed) is
recognised and skipped, not counted twice. A bar closed by the timer is saved to the
table like one closed by a trade, so the next owner of the partition does not emit it
again. At every hand-over (a rebalance) the in-memory aggregators are dropped and reloaded
from the table on the next trade, so a worker never closes bars of an instrument it no longer owns.
Each closed bar is published to ``bars.<interval>`` (and to a stage of this worker that
takes it in-process: :mod:`streams.stage`); each trade read is handed on as read to the
stages of this worker that take ``md.trades`` (the paper broker, in the ``single`` layout).
"""

from __future__ import annotations

import time
from typing import Any

import faust
from aiokafka import TopicPartition

from algostream.config import Settings
from algostream.marketdata.bars import BarAggregator
from algostream.model.records import Bar, BarInterval, TradeTick
from algostream.observability import metrics
from streams.edge import Edge
from streams.outbox import Outbox
from streams.reader import decoded, market_reader
from streams.stage import Stage
from streams.state import StageState

GRACE_NS = 250_000_000
LIVE_WITHIN_NS = 60_000_000_000
AGENT = "bars"


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    intervals = settings.market_data.bar_intervals
    state = StageState.add(app, edge, "bars-state", "md.trades")
    table = state.table
    reader = market_reader(app, edge, settings)
    aggs: dict[tuple[str, str], BarAggregator] = {}
    #: (interval, instrument) -> (partition, offset) of the last trade in its saved state
    applied: dict[tuple[str, str], tuple[int, int]] = {}
    #: instrument -> (event time of its last trade, its partition and offset)
    last_read: dict[str, tuple[int, TopicPartition, int]] = {}

    def agg(interval: BarInterval, inst: str) -> BarAggregator:
        key = (interval, inst)
        if key not in aggs:
            saved = table.get(f"{interval}|{inst}")
            aggs[key] = (
                BarAggregator.from_state(saved) if saved is not None else BarAggregator(interval)
            )
            if saved is not None and saved.get("applied") is not None:
                partition, offset = saved["applied"]
                applied[key] = (int(partition), int(offset))
        return aggs[key]

    def saved(key: tuple[str, str], a: BarAggregator) -> tuple[str, dict[str, Any]]:
        """The table key and saved state of one aggregator."""
        return f"{key[0]}|{key[1]}", a.to_state() | {"applied": applied.get(key)}

    async def publish(bars: list[Bar]) -> None:
        for bar in bars:
            await edge.publish(f"bars.{bar.interval}", bar)

    def forget() -> None:
        aggs.clear()  # owned instruments are reloaded from the table at their next trade
        applied.clear()
        last_read.clear()

    async def on_trades(batch: dict[TopicPartition, list[Any]]) -> None:
        """One batch of trades; each changed bar state is written once, at its end."""
        changed: dict[tuple[str, str], BarAggregator] = {}
        async for tp, rec, tick in decoded(edge, batch, "md.trades", TradeTick, AGENT):
            last_read[tick.instrument] = (tick.ts_event, tp, rec.offset)
            await edge.deliver("md.trades", tick)  # forwarded as read
            for interval in intervals:
                a = agg(interval, tick.instrument)
                key: tuple[str, str] = (interval, tick.instrument)
                done = applied.get(key)
                if done is not None and done[0] == tp.partition and rec.offset <= done[1]:
                    continue  # re-delivered (at-least-once): already in the saved bar
                result = a.on_trade(tick)
                await publish(result.bars)
                for late in result.late:  # policy: counted, kept in dlq, bar unchanged
                    metrics.LATE_TRADES.labels(instrument=late.instrument, interval=interval).inc()
                    await edge.dead_letter_raw(
                        rec,
                        rec.timestamp,
                        ValueError(
                            f"late trade {late.trade_id} at {late.ts_event} for closed "
                            f"{interval} bar of {late.instrument}"
                        ),
                        AGENT,
                    )
                applied[key] = (tp.partition, rec.offset)
                changed[key] = a
        if changed:
            outbox = Outbox(edge)
            for key, a in changed.items():
                state.stage(outbox, *saved(key, a), key[1])
            await outbox.send()

    trades_topic = reader.read("md.trades", on_trades, forget)

    def adopt_open_bars() -> None:
        """Load bars left open in the table for partitions this worker owns and has read no
        trade of since the last rebalance: a quiet instrument's open bar is closed by the
        clock here too (it was only reloaded at its next trade, which may never come).
        Only once the rebalance is over (tables recovered) and the partition has been fetched
        since: before that the table may not hold the last owner's state yet."""
        if app.rebalancing or not reader.ready.is_set():
            return
        owned = edge.assigned("md.trades")
        if not owned:  # not started yet, or nothing assigned
            return
        for name, saved in list(table.items()):
            interval, _, inst = name.partition("|")
            if (interval, inst) in aggs or not isinstance(saved, dict):
                continue
            where, opened = saved.get("applied"), (saved.get("open") or {}).get(inst)
            if where is None or opened is None or where[0] not in owned:
                continue
            tp = TopicPartition(trades_topic, where[0])
            if reader.fetched_at_ns(tp) is None:
                continue
            agg(interval, inst)
            if inst not in last_read:  # as if its last trade had just been read
                last_read[inst] = (int(opened["start_ns"]), tp, where[1])

    @app.timer(interval=0.25)  # type: ignore[untyped-decorator]
    async def close_bars() -> None:
        now = time.time_ns()
        adopt_open_bars()
        for key, a in list(aggs.items()):
            read = last_read.get(key[1])
            if read is None or aggs.get(key) is not a:  # revoked meanwhile
                continue
            ts_event, tp, offset = read
            if now - ts_event >= LIVE_WITHIN_NS:  # a replay: closed by its own trades only
                continue
            highwater = reader.highwater(tp)
            fetched = reader.fetched_at_ns(tp)
            if fetched is None or (highwater is not None and offset + 1 < highwater):
                continue  # a backlog: its own trades close its bars
            bars = a.on_time(min(now, fetched) - GRACE_NS)
            if bars:
                await publish(bars)
                if aggs.get(key) is a:  # still owned
                    await state.save(*saved(key, a), key[1])

    return [
        Stage(
            AGENT,
            reads=("md.trades",),
            forwards=("md.trades",),
            outputs=tuple(f"bars.{i}" for i in intervals),
            state=state,
        )
    ]
