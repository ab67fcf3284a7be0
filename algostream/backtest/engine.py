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

>>> from algostream.config import Settings, StrategySpec
>>> engine = BacktestEngine(Settings())
>>> engine.run([]).counts
{}
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from algostream.config import Settings, StrategySpec
from algostream.execution.futures_venue import is_futures, paper_futures
from algostream.execution.order_lists import OrderLists
from algostream.execution.paper import PaperBroker
from algostream.features.processor import FeatureProcessor
from algostream.ingest.binance import BinanceAdapter
from algostream.ingest.binance_usdm import BinanceUsdmAdapter
from algostream.marketdata import native
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
#: the cyclic GC's young-generation threshold while a run lasts (Python's default: 700)
RUN_GC_THRESHOLD = 50_000
#: while a run lasts, every this many input records what exists is frozen (``gc.freeze``)
FREEZE_EVERY = 1_000


@contextmanager
def young_gc_threshold(threshold: int = RUN_GC_THRESHOLD) -> Iterator[None]:
    """Collect the young generation every ``threshold`` allocations, not every 700.

    A run allocates a few records per event and keeps them (the outputs): at Python's
    default every 700 allocations a collection walks the young objects, and the older
    generations are walked again and again as the kept outputs grow; that was a third of
    a tick run's CPU time (0.73 s -> 0.54 s on the synthetic market's 23,885 events). The
    collector still runs (cyclic garbage is collected, later); the thresholds are restored
    when the run ends.
    """
    old = gc.get_threshold()
    gc.set_threshold(max(threshold, old[0]), max(old[1], 20), max(old[2], 20))
    try:
        yield
    finally:
        gc.set_threshold(*old)


@dataclass(frozen=True, slots=True)
class EncodedBook:
    """An ``md.book`` record as its encoded bytes (a replay from the topics or a capture):
    the engine runs it through the book stage's compiled path, as the worker does, and
    decodes it only where that path hands it to the Python one, or when its ``md.book``
    output is read (:class:`Outputs`)."""

    ts_event: int
    value: bytes

    def decode(self) -> BookUpdate:
        return BookUpdate.decode(self.value)


#: what the engine takes: records, or md.book records as their bytes
EngineInput = Record | EncodedBook


class Outputs(list[tuple[str, Any]]):
    """``BacktestResult.outputs``: a list whose ``md.book`` entries given as
    :class:`EncodedBook` are decoded to their ``BookUpdate`` (in place, once) the first time
    the list is read; until then they cost no decoding (a report reads only other topics:
    :meth:`BacktestResult.on`)."""

    __slots__ = ("lazy",)

    def __init__(self, items: Iterable[tuple[str, Any]] = ()) -> None:
        super().__init__(items)
        #: the indices of the entries still encoded
        self.lazy: list[int] = []

    def settle(self) -> None:
        get, put = list.__getitem__, list.__setitem__
        for i in self.lazy:
            topic, encoded = get(self, i)
            put(self, i, (topic, encoded.decode()))
        self.lazy.clear()


def _settling(name: str) -> Any:
    base = getattr(list, name)

    def method(self: Outputs, *args: Any, **kwargs: Any) -> Any:
        if self.lazy:
            self.settle()
        return base(self, *args, **kwargs)

    method.__name__ = name
    return method


for _name in (
    "__iter__", "__getitem__", "__reversed__", "__eq__", "__ne__", "__repr__", "__contains__",
    "__add__", "__reduce_ex__", "copy", "index", "count", "pop", "sort",
):  # fmt: skip
    setattr(Outputs, _name, _settling(_name))


@dataclass
class BacktestResult:
    """Every output record by topic, in the order produced."""

    outputs: list[tuple[str, Record]] = field(default_factory=Outputs)

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(topic for topic, _ in list.__iter__(self.outputs)))

    def on(self, topic: str) -> list[Record]:
        if topic == "md.book":
            return [r for t, r in self.outputs if t == topic]
        return [r for t, r in list.__iter__(self.outputs) if t == topic]

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
        #: each strategy's context: the risk ledger, its open orders from the events
        self.portfolios: list[LedgerPortfolio] = []

        def portfolio(spec: StrategySpec) -> LedgerPortfolio:
            held = LedgerPortfolio(self.risk, account, self.risk.attributed(spec.id))
            self.portfolios.append(held)
            return held

        self.signals = StrategySet(
            settings.signal,
            settings.risk,
            only=lambda spec: spec.shadow == shadow,
            portfolio=portfolio,
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
        #: instrument -> its newest book top the feature processors have not been given
        self._unread_tops: dict[str, BookTop] = {}

    # ------------------------------------------------------------------ input
    def run(self, records: Iterable[EngineInput]) -> BacktestResult:
        """Process ``records`` (RawFrame, BookUpdate or EncodedBook, TradeTick, MarkPrice)
        in the order given."""
        with young_gc_threshold():
            self._run(records)
        return self.result

    def _run(self, records: Iterable[EngineInput]) -> None:
        # by exact type first (one dict look-up per event), else by isinstance
        handlers: dict[type, Callable[[Any], None]] = {
            BookUpdate: self.on_book_update,
            EncodedBook: lambda encoded: self.on_book_update(encoded.decode()),
            TradeTick: self.on_trade,
            RawFrame: self.on_raw_batch,
            MarkPrice: self.on_mark_price,
        }
        # the book updates (most of a tick run's events) handled here, without a call
        # per update and per top for what is bound once per run (see on_book_update)
        plain = type(self).on_book_update is BacktestEngine.on_book_update
        fast = plain and type(self)._on_top is BacktestEngine._on_top
        outputs = self.result.outputs
        emit = outputs.append if type(self).emit is BacktestEngine.emit else None
        # md.book bytes: the compiled book path (as the worker's), their md.book outputs
        # decoded only when read (Outputs); None: decoded here, the Python path
        lazy = outputs.lazy if isinstance(outputs, Outputs) and fast and emit else None
        compiled: Any = None
        # the inputs the compiled book path takes (below), once a run has one
        compiled_kinds: tuple[type, ...] = (
            (EncodedBook, BookUpdate)
            if lazy is not None
            else (BookUpdate,)
            if fast and emit
            else ()
        )
        pending: dict[str, Any] = {}  # (no level store: the state writes go nowhere)
        on_update = self.book.on_update
        venue_top = self.lists.venue.on_book_top
        risk_top = self.risk.on_book_top
        unread = self._unread_tops
        last_ts = self._last_ts
        outs: Any
        # the kept outputs out of the collector's sight (FREEZE_EVERY; unless someone else
        # froze objects: gc.unfreeze would thaw theirs too)
        freeze = FREEZE_EVERY > 0 and gc.get_freeze_count() == 0
        count = 0
        try:
            for record in records:
                if freeze:
                    count += 1
                    if count >= FREEZE_EVERY:
                        gc.freeze()
                        count = 0
                if record.ts_event > last_ts:
                    last_ts = self._last_ts = record.ts_event
                kind = type(record)
                if compiled is None and kind in compiled_kinds:
                    # the compiled book path, attached at the run's first book update
                    compiled = self.book.fast or native.attach(self.book) or False
                if kind is EncodedBook and lazy is not None:
                    assert isinstance(record, EncodedBook)
                    done = (
                        compiled.handle(record.value, -1, pending, native.RECORD_ONLY)
                        if compiled
                        else None
                    )
                    if done is None:  # the Python path takes it (the processor settles)
                        record, kind = record.decode(), BookUpdate
                    else:
                        lazy.append(len(outputs))
                        emit(("md.book", record))  # type: ignore[arg-type, misc]
                        outs = () if done[3] is None else (done[3],)
                if kind is BookUpdate and fast and emit is not None:
                    assert isinstance(record, BookUpdate)
                    emit(("md.book", record))
                    # the compiled path from the record's fields (no bytes: none to keep)
                    done = compiled.handle_update(record, pending) if compiled else None
                    if done is None:  # the Python path takes it (the processor settles)
                        outs = on_update(record, record.ts_init)
                    else:
                        outs = () if done[3] is None else (done[3],)
                elif kind is not EncodedBook or lazy is None:
                    outs = None
                if outs is not None:
                    for out in outs:
                        if type(out) is not BookTop:
                            self._on_book_output(out)
                            continue
                        # _on_top, inlined
                        emit(("book.top", out))  # type: ignore[misc]
                        unread[out.instrument] = out
                        events = venue_top(out)
                        if events:
                            self._fills(self.lists.follow(events, out.ts_event))
                        marks = risk_top(out, out.ts_init)
                        if marks:
                            self._risk(marks)
                        if self.signals.uses_books:
                            self._signals(self.signals.on_book(out))
                    continue
                handler = handlers.get(kind)
                if handler is not None:
                    handler(record)
                elif isinstance(record, RawFrame):
                    self.on_raw_batch(record)
                elif isinstance(record, BookUpdate):
                    self.on_book_update(record)
                elif isinstance(record, TradeTick):
                    self.on_trade(record)
                elif isinstance(record, MarkPrice):
                    self.on_mark_price(record)
                else:
                    raise TypeError(
                        f"backtest input must be md.raw/md.book/md.trades/md.mark_price "
                        f"records, got {type(record).__name__}"
                    )
        finally:
            self._last_ts = max(self._last_ts, last_ts)
            if freeze:
                gc.unfreeze()

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

    def on_raw_batch(self, record: RawFrame) -> None:
        """An ``md.raw`` record: each of its frames (a batched record holds several)."""
        for frame in record.frames():
            self.on_raw(frame)

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
        # (``_run`` does the same for a run's updates without the calls: keep them alike)
        self.emit("md.book", update)
        for record in self.book.on_update(update, update.ts_init):
            if isinstance(record, BookTop):
                self._on_top(record)
            else:
                self._on_book_output(record)

    def _on_book_output(self, record: Record) -> None:
        """A book stage output that is not a ``BookTop`` (a ``BookIntegrity`` or a top of
        a subclass: as ``on_book_update`` would handle it)."""
        if isinstance(record, BookTop):
            self._on_top(record)
        elif isinstance(record, BookIntegrity):
            self.emit("book.integrity", record)
            self._risk(self.risk.on_integrity(record, record.ts_init))

    def _on_top(self, top: BookTop) -> None:
        # (every book update: the emptiness checks spare a call per stage and top)
        self.emit("book.top", top)
        # features keep only the latest top, read at the next bar: handed over then
        self._unread_tops[top.instrument] = top
        events = self.lists.venue.on_book_top(top)
        if events:
            self._fills(self.lists.follow(events, top.ts_event))
        marks = self.risk.on_book_top(top, top.ts_init)
        if marks:
            self._risk(marks)
        if self.signals.uses_books:
            self._signals(self.signals.on_book(top))

    def on_trade(self, trade: TradeTick) -> None:
        self.emit("md.trades", trade)
        events = self.lists.venue.on_trade(trade)  # (the lists react only to events)
        if events:
            self._fills(self.lists.follow(events, trade.ts_event))
        for agg in self.bars:
            bar = agg.add(trade)  # (a late trade closes nothing: dropped, as before)
            if bar is not None:
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
        if self._unread_tops:
            for top in self._unread_tops.values():  # (in first-seen order, as they came)
                for features in self.feature_procs:
                    features.on_book(top)
            self._unread_tops.clear()
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
            for held in self.portfolios:
                held.on_order_event(event)
            self._risk(self.risk.on_order_event(event, event.ts_init))

    def _risk(self, records: list[Record]) -> None:
        for record in records:
            topic = output_topic(record, from_proposal=False)
            if topic == "orders.proposed":  # a stop or a flatten: goes through risk again
                assert isinstance(record, OrderRequest)
                self._propose(record)
            else:
                self.emit(topic, record)
