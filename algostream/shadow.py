"""Shadow strategies: a new strategy trades on paper beside the live ones, on the live feed.

A strategy of ``signal.strategies`` with ``shadow: true`` is not run by the live workers
(their signal stage skips it; the live risk gate refuses any order of it). The shadow
worker (``algostream shadow run``) reads the live ``book.top`` and ``bars.<interval>``
topics in its own consumer group (``<app_id>-shadow``, from their ends), and drives the
shadow strategies through the same processors as the tick engine
(:class:`ShadowEngine`: features, strategy, sizing, its own risk gate, the paper broker
filling against the live book). What it produces goes only to the ``shadow.*`` topics
(:data:`SHADOW_TOPICS`). It has no venue client at all: nothing in this path can send an
order to the exchange, whatever ``execution.paper_trading`` says.

``algostream shadow report`` compares a shadow strategy with a live one over a time range
(:func:`compare`): signals, fills, fees and P&L side by side. Promotion is a config change:
``shadow: false``.

State is in memory: a restarted shadow worker starts a fresh paper account.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal

import structlog

from algostream.backtest.engine import BacktestEngine
from algostream.config import ConfigError, Settings
from algostream.model.enums import Side
from algostream.model.records import Bar, BookTop, OrderEvent, PnL, Record, Signal
from algostream.observability.strategies import observe_strategy

log = structlog.get_logger("algostream.shadow")

#: engine output topic -> the shadow topic it goes to (the others are not written)
SHADOW_TOPICS = {
    "signals": "shadow.signals",
    "orders.proposed": "shadow.orders.proposed",
    "orders.rejected": "shadow.orders.rejected",
    "orders.events": "shadow.orders.events",
    "positions": "shadow.positions",
    "pnl": "shadow.pnl",
}


class ShadowEngine(BacktestEngine):
    """The tick engine on live book tops and bars, for the shadow strategies only."""

    def __init__(self, settings: Settings) -> None:
        if not settings.shadow_specs():
            raise ConfigError(
                "config key 'signal.strategies' has no strategy with shadow: true; "
                "the shadow worker has nothing to run"
            )
        super().__init__(settings, shadow=True)

    def emit(self, topic: str, record: Record) -> None:
        shadow = SHADOW_TOPICS.get(topic)
        if shadow is not None:
            self.result.outputs.append((shadow, record))

    def on_live(self, record: Record) -> list[tuple[str, Record]]:
        """One live record (``BookTop`` or ``Bar``); the shadow outputs it caused."""
        self._last_ts = max(self._last_ts, record.ts_event)
        if isinstance(record, BookTop):
            self._on_top(record)
        elif isinstance(record, Bar):
            self._on_bar(record)
        out, self.result.outputs = self.result.outputs, []
        return out


def shadow_inputs(settings: Settings) -> list[str]:
    """The live topics the shadow worker reads."""
    intervals = {s.bar_interval or settings.signal.bar_interval for s in settings.shadow_specs()}
    return ["book.top", *(f"bars.{i}" for i in sorted(intervals))]


async def run_shadow(
    settings: Settings, stop: asyncio.Event | None = None, *, offset_reset: str = "latest"
) -> int:
    """Run the shadow strategies on the live topics until ``stop``; records written."""
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.clients import make_consumer
    from algostream.kafka.publisher import KafkaPublisher

    engine = ShadowEngine(settings)
    catalog = load_catalog()
    prefix = settings.kafka.topic_prefix
    types = {prefix + t: catalog[t].record_type for t in shadow_inputs(settings)}
    consumer = make_consumer(
        settings.kafka,
        *types,
        group_id=f"{settings.kafka.app_id}-shadow",
        auto_offset_reset=offset_reset,
    )
    publisher = KafkaPublisher(settings.kafka)
    await consumer.start()
    await publisher.start()
    written = 0
    stop = stop or asyncio.Event()
    log.info("shadow worker started", strategies=[s.id for s in settings.shadow_specs()])
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            records = [
                types[tp.topic].decode(m.value) for tp, msgs in batches.items() for m in msgs
            ]
            records.sort(key=lambda r: r.ts_event)  # (tops and bars of one batch, in time)
            for record in records:
                for topic, out in engine.on_live(record):
                    await publisher.publish(topic, out)
                    observe_strategy(out, "shadow")  # the dashboard's shadow vs live
                    written += 1
            if records:  # 1. outputs on the broker, 2. then the inputs' offsets
                await publisher.flush()
                await consumer.commit()
    finally:
        await consumer.stop()
        await publisher.flush()
        await publisher.producer.stop()
    return written


# ---------------------------------------------------------------------------- report


@dataclass
class StrategySummary:
    """One strategy over a time range."""

    strategy: str
    signals_buy: int = 0
    signals_sell: int = 0
    fills: int = 0
    filled_quantity: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    equity_change: Decimal | None = None

    def rows(self) -> dict[str, str]:
        def text(v: Decimal | None) -> str:
            return "-" if v is None else str(v)

        return {
            "signals (buy/sell)": f"{self.signals_buy}/{self.signals_sell}",
            "fills": str(self.fills),
            "filled quantity": str(self.filled_quantity),
            "fees": str(self.fees),
            "realized P&L": text(self.realized_pnl),
            "unrealized P&L": text(self.unrealized_pnl),
            "equity change": text(self.equity_change),
        }


def summarise(
    strategy: str, records: list[Record], *, account_pnl: bool = False
) -> StrategySummary:
    """``strategy``'s signals, fills and P&L among ``records`` (in time order). With
    ``account_pnl`` the account's P&L records stand for it (a one-strategy deployment)."""
    out = StrategySummary(strategy)
    pnls: list[PnL] = []
    for rec in records:
        if isinstance(rec, Signal) and rec.strategy == strategy:
            if rec.side is Side.BUY:
                out.signals_buy += 1
            else:
                out.signals_sell += 1
        elif isinstance(rec, OrderEvent) and rec.strategy == strategy and rec.fill_qty > 0:
            out.fills += 1
            out.filled_quantity += rec.fill_qty
            out.fees += rec.fee
        elif isinstance(rec, PnL) and rec.strategy == (None if account_pnl else strategy):
            pnls.append(rec)
    if pnls:
        out.realized_pnl = pnls[-1].realized_pnl
        out.unrealized_pnl = pnls[-1].unrealized_pnl
        out.equity_change = pnls[-1].equity - pnls[0].equity
    return out


def compare(
    live_id: str, live: list[Record], shadow_id: str, shadow: list[Record], *, attributed: bool
) -> tuple[StrategySummary, StrategySummary]:
    """The live strategy (``attributed``: its own P&L records, else the account's) and the
    shadow one, side by side."""
    return (
        summarise(live_id, live, account_pnl=not attributed),
        summarise(shadow_id, shadow),
    )


async def report(
    settings: Settings, shadow_id: str, live_id: str, from_ns: int | None, to_ns: int | None
) -> tuple[StrategySummary, StrategySummary]:
    """Read both strategies' records in [from_ns, to_ns] from the topics and compare."""
    from algostream.backtest.run import decode_topic_record
    from algostream.backtest.source import read_range

    specs = {s.id: s for s in settings.signal.specs()}
    if shadow_id not in specs or not specs[shadow_id].shadow:
        raise ConfigError(f"--shadow {shadow_id!r}: not a shadow strategy of signal.strategies")
    if live_id not in specs or specs[live_id].shadow:
        raise ConfigError(f"--live {live_id!r}: not a live strategy of this deployment")
    live_topics = ["signals", "orders.events", "pnl"]
    live = [
        decode_topic_record(r)
        for r in await read_range(settings.kafka, live_topics, from_ns, to_ns)
    ]
    shadow = [
        decode_topic_record(r)
        for r in await read_range(
            settings.kafka, [SHADOW_TOPICS[t] for t in live_topics], from_ns, to_ns
        )
    ]
    return compare(live_id, live, shadow_id, shadow, attributed=bool(settings.signal.strategies))
