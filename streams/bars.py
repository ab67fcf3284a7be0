"""Bar agent: ``md.trades`` -> open bars table -> ``bars.1s`` / ``bars.1m`` (event time).

One :class:`~algostream.marketdata.bars.BarAggregator` per instrument and interval; a bar
closes when a trade of a later bucket arrives, or, for a live feed, when the wall clock
passes the bucket end plus a grace period (a replay of old history is closed by its own
trades only, so it never races the wall clock). Late trades (older than the open bar) go
to ``dlq`` with the reason rather than being dropped silently.
"""

from __future__ import annotations

import time

import faust

from algostream.config import Settings
from algostream.marketdata.bars import BarAggregator
from algostream.model.records import Bar, TradeTick
from streams.app import Edge

GRACE_NS = 250_000_000
LIVE_WITHIN_NS = 60_000_000_000


def register(app: faust.App, edge: Edge, settings: Settings) -> None:
    intervals = settings.market_data.bar_intervals
    table = app.Table("bars-state", default=None, partitions=edge.catalog["md.trades"].partitions)
    aggs: dict[tuple[str, str], BarAggregator] = {}
    last_event: dict[str, int] = {}

    def agg(interval: str, inst: str) -> BarAggregator:
        key = (interval, inst)
        if key not in aggs:
            saved = table.get(f"{interval}|{inst}")
            aggs[key] = (
                BarAggregator.from_state(saved) if saved is not None else BarAggregator(interval)
            )  # type: ignore[arg-type]
        return aggs[key]

    async def publish(bars: list[Bar]) -> None:
        for bar in bars:
            await edge.send(f"bars.{bar.interval}", bar)

    @app.agent(edge.topic("md.trades"), name="bars")
    async def trades(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            tick = await edge.decode_or_dlq(event, TradeTick, "bars")
            if tick is None:
                continue
            last_event[tick.instrument] = tick.ts_event
            for interval in intervals:
                a = agg(interval, tick.instrument)
                result = a.on_trade(tick)
                await publish(result.bars)
                for late in result.late:
                    await edge.dead_letter(
                        event,
                        ValueError(
                            f"late trade {late.trade_id} at {late.ts_event} for closed "
                            f"{interval} bar of {late.instrument}"
                        ),
                        "bars",
                    )
                table[f"{interval}|{tick.instrument}"] = a.to_state()

    @app.timer(interval=0.25)
    async def close_bars() -> None:
        now = time.time_ns()
        for (_interval, inst), a in list(aggs.items()):
            if now - last_event.get(inst, 0) < LIVE_WITHIN_NS:  # live feed only
                await publish(a.on_time(now - GRACE_NS))
