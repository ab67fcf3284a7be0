"""The backtest engine: the live agents' processors, driven in one process.

The same objects the Faust agents wrap (``BookProcessor``, ``BarAggregator``,
``FeatureProcessor``, ``StrategySet`` (every strategy of ``signal.strategies``, each a
``SignalProcessor`` and an ``OrderSizer``), ``RiskProcessor``,
``PaperBroker``) are called in the order the topics connect them, with a simulated clock:
"now" is always the ``ts_init`` of the record being processed, so the same input and the
same config give bit-identical outputs, run after run.

Input is either raw frames (``md.raw``: a capture file; they go through the same Binance
adapter logic as the live ingestor, snapshots included) or normalised ``md.book`` /
``md.trades`` records read back from the topics.

Futures (``market_data.exchange = "binance_usdm"``): the paper broker fills under a
:class:`~algostream.execution.futures_paper.FuturesPaperBroker` as in the trading worker,
the gate applies the futures checks, and ``md.mark_price`` records in the input (from
the topic, a capture, or a funding history: :func:`~algostream.backtest.run.funding_marks`)
settle funding into P&L at each funding time, as live.

>>> from algostream.config import Settings
>>> engine = BacktestEngine(Settings())
>>> engine.run([]).counts
{}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal

from algostream.config import Settings
from algostream.execution.futures_venue import is_futures, paper_futures
from algostream.execution.order_lists import OrderLists
from algostream.execution.paper import PaperBroker
from algostream.features.processor import FeatureProcessor
from algostream.ingest.binance import BinanceAdapter
from algostream.ingest.binance_usdm import BinanceUsdmAdapter
from algostream.marketdata.bars import BarAggregator
from algostream.marketdata.processor import BookProcessor
from algostream.model.enums import OrderType, Side
from algostream.model.ids import derive_id
from algostream.model.records import (
    Bar,
    BookIntegrity,
    BookTop,
    BookUpdate,
    Liquidation,
    MarkPrice,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    PnL,
    RawFrame,
    Record,
    Signal,
    TradeTick,
)
from algostream.risk import RiskProcessor
from algostream.risk.processor import output_topic
from algostream.signals.context import LedgerPortfolio
from algostream.signals.multi import StrategySet

REST_PREFIX = "rest:"


@dataclass
class BacktestResult:
    """Every output record by topic, in the order produced."""

    outputs: list[tuple[str, Record]] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(topic for topic, _ in self.outputs))

    def on(self, topic: str) -> list[Record]:
        return [r for t, r in self.outputs if t == topic]

    @property
    def fills(self) -> list[OrderEvent]:
        return [r for r in self.on("orders.events") if isinstance(r, OrderEvent) and r.fill_qty > 0]

    @property
    def equity_curve(self) -> list[tuple[int, Decimal]]:
        return [
            (p.ts_event, p.equity)
            for p in self.on("pnl")
            if isinstance(p, PnL) and p.strategy is None  # the account's, not a strategy's
        ]

    def strategy_equity(self, strategy: str) -> list[tuple[int, Decimal]]:
        """One strategy's equity curve (``signal.strategies``: its own P&L records)."""
        return [
            (p.ts_event, p.equity)
            for p in self.on("pnl")
            if isinstance(p, PnL) and p.strategy == strategy
        ]


class BacktestEngine:
    """One process, simulated clock, the live processors (see module docstring)."""

    def __init__(self, settings: Settings, *, shadow: bool = False) -> None:
        """``shadow``: run the shadow strategies (the shadow worker), else the live ones."""
        md, ex = settings.market_data, settings.execution
        self.settings = settings
        #: raw frames go through the live ingestor's adapter of the exchange
        self.adapter: BinanceAdapter | BinanceUsdmAdapter = (
            BinanceUsdmAdapter(md) if is_futures(settings) else BinanceAdapter(md)
        )
        self.book = BookProcessor(md.book_top_levels)
        self.bars = [BarAggregator(i) for i in md.bar_intervals]
        self.risk = RiskProcessor(
            settings.risk, strategies=settings.signal.strategies, shadow=shadow
        )
        account = settings.risk.account
        self.signals = StrategySet(
            settings.signal,
            settings.risk,
            only=lambda spec: spec.shadow == shadow,
            portfolio=lambda spec: LedgerPortfolio(
                self.risk, account, self.risk.attributed(spec.id)
            ),
        )
        #: one feature processor per bar interval a strategy decides on
        self.feature_procs = [
            FeatureProcessor(settings.signal.model_copy(update={"bar_interval": interval}))
            for interval in self.signals.intervals
        ]
        self.broker = PaperBroker(ex.fee_rate, ex.paper_latency_ms * 1_000_000)
        #: futures: the same broker under a futures account (margin checks, funding)
        self.futures = paper_futures(self.broker, settings, None) if is_futures(settings) else None
        #: every order goes through the OCO / bracket lists over the broker (as live)
        self.lists = OrderLists(self.broker, venue=self.futures)
        self.result = BacktestResult()
        self._last_ts = 0

    # ------------------------------------------------------------------ input
    def run(self, records: Iterable[Record]) -> BacktestResult:
        """Process ``records`` (RawFrame, or BookUpdate/TradeTick) in the order given."""
        for record in records:
            self._last_ts = max(self._last_ts, record.ts_event)
            if isinstance(record, RawFrame):
                for frame in record.frames():  # a batched md.raw record: each frame
                    self.on_raw(frame)
            elif isinstance(record, BookUpdate):
                self.on_book_update(record)
            elif isinstance(record, TradeTick):
                self.on_trade(record)
            elif isinstance(record, MarkPrice):
                self.on_mark_price(record)
            else:
                raise TypeError(
                    f"backtest input must be md.raw/md.book/md.trades/md.mark_price records, "
                    f"got {type(record).__name__}"
                )
        return self.result

    def finish(self, close_positions: bool = False) -> BacktestResult:
        """The end of the input: close every open bar (as the live bar stage's clock does
        once a bar's time has passed) and run it through features and the strategy; with
        ``close_positions``, flatten every open position by a MARKET order through risk
        and the paper broker (filled against the last book, at the last event's time)."""
        last = self._last_ts
        for agg in self.bars:
            for bar in agg.on_time(last + agg.interval_ns):
                self._on_bar(bar)
        if close_positions:
            self._fills(self.lists.advance(last))
            for ledger in list(self.risk.ledgers.values()):
                for inst, pos in list(ledger.positions.items()):
                    if pos.quantity:
                        self._propose(self._closing_order(ledger.account, inst, pos.quantity))
            self._fills(self.lists.advance(last + self.broker.latency_ns))
        return self.result

    def _closing_order(self, account: str, instrument: str, quantity: Decimal) -> OrderRequest:
        last = self._last_ts
        cause = derive_id("close-at-end", account, instrument, last)
        return OrderRequest(
            instrument=instrument,
            ts_event=last,
            ts_init=last,
            record_id=derive_id("order", cause),
            lineage_id=cause,
            account=account,
            client_order_id=cause,
            strategy="close-at-end",
            side=Side.SELL if quantity > 0 else Side.BUY,
            order_type=OrderType.MARKET,
            quantity=abs(quantity),
            reduce_only=True,
        )

    def emit(self, topic: str, record: Record) -> None:
        self.result.outputs.append((topic, record))

    def on_raw(self, raw: RawFrame) -> None:
        """A recorded frame: exactly what the live ingestor does with it."""
        if raw.stream.startswith(REST_PREFIX):
            symbol = raw.instrument.partition(":")[2]
            result = self.adapter.on_snapshot_body(symbol, raw.payload, raw.ts_init)
        else:
            result = self.adapter.on_frame(0, raw.payload, raw.ts_init)
        if result.error is not None:
            self.emit("dlq", raw)
            return
        for topic, record in result.records:
            if topic == "md.raw":
                continue  # the input itself
            if isinstance(record, BookUpdate):
                self.on_book_update(record)
            elif isinstance(record, TradeTick):
                self.on_trade(record)
            elif isinstance(record, MarkPrice):
                self.on_mark_price(record)
            elif isinstance(record, Liquidation):
                self.emit("md.liquidations", record)
            elif isinstance(record, BookIntegrity):
                self.emit("book.integrity", record)
                self._risk(self.risk.on_integrity(record, record.ts_init))

    # ------------------------------------------------------------------ market data
    def on_book_update(self, update: BookUpdate) -> None:
        self.emit("md.book", update)
        for record in self.book.on_update(update, update.ts_init):
            if isinstance(record, BookTop):
                self._on_top(record)
            elif isinstance(record, BookIntegrity):
                self.emit("book.integrity", record)
                self._risk(self.risk.on_integrity(record, record.ts_init))

    def _on_top(self, top: BookTop) -> None:
        self.emit("book.top", top)
        for features in self.feature_procs:
            features.on_book(top)
        self._fills(self.lists.on_book_top(top))
        self._risk(self.risk.on_book_top(top, top.ts_init))
        if self.signals.uses_books:
            self._signals(self.signals.on_book(top))

    def on_trade(self, trade: TradeTick) -> None:
        self.emit("md.trades", trade)
        self._fills(self.lists.on_trade(trade))
        for agg in self.bars:
            for bar in agg.on_trade(trade).bars:
                self._on_bar(bar)

    def on_mark_price(self, mark: MarkPrice) -> None:
        """Futures: the paper account's and the gate's funding (as the trading worker)."""
        self.emit("md.mark_price", mark)
        if self.futures is not None:
            self.futures.on_mark_price(mark)
            self._fills(self.futures.take_liquidations())
        self._risk(self.risk.on_mark_price(mark, mark.ts_init))

    def _on_bar(self, bar: Bar) -> None:
        self.emit(f"bars.{bar.interval}", bar)
        if self.signals.uses_bars:
            self._signals(self.signals.on_bar(bar))
        for features in self.feature_procs:
            fv = features.on_bar(bar)
            if fv is not None:
                self.emit("features", fv)
                self._signals(self.signals.decide(fv))

    def _signals(self, signals: list[Signal]) -> None:
        for signal in signals:
            self.emit("signals", signal)
            order = self.signals.to_order(signal)
            if order is not None:
                self._propose(order)

    # ------------------------------------------------------------------ orders
    def _propose(self, order: OrderRequest) -> None:
        self.emit("orders.proposed", order)
        for decision in self.risk.on_proposal(order, order.ts_init):
            if isinstance(decision, OrderRequest):
                self.emit("orders.approved", decision)
                self._fills(self.lists.submit(decision, decision.ts_init))
            elif isinstance(decision, OrderRejected):
                self.emit("orders.rejected", decision)

    def _fills(self, events: list[OrderEvent]) -> None:
        for event in events:
            self.emit("orders.events", event)
            self._risk(self.risk.on_order_event(event, event.ts_init))

    def _risk(self, records: list[Record]) -> None:
        for record in records:
            topic = output_topic(record, from_proposal=False)
            if topic == "orders.proposed":  # a stop or a flatten: goes through risk again
                assert isinstance(record, OrderRequest)
                self._propose(record)
            else:
                self.emit(topic, record)
