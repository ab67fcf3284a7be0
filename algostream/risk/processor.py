"""``RiskProcessor``: pre-trade checks, ledger, stops and breaker behind five plain methods.

The risk agent decodes a record, calls the matching method and sends what it returns to
the topic of each record's type (``OrderRequest`` returned by :meth:`on_proposal` goes to
``orders.approved``; an ``OrderRequest`` returned by any other method is a new *proposal*
for ``orders.proposed``; ``OrderRejected`` to ``orders.rejected``; ``RiskEvent`` to
``risk.events``; ``Position`` to ``positions``; ``PnL`` to ``pnl``). After each call the agent
may persist :meth:`to_state` (a JSON-able dict) and rebuild with :meth:`from_state`.

Idempotence (at-least-once delivery):

* a proposal whose ``client_order_id`` was already decided is answered with **the same
  decision record again** (same ``record_id``), without touching rate windows or pending
  orders - so an output lost in a crash is re-sent, and the order is approved at most once
  (downstream de-duplicates by ``record_id`` / ``client_order_id``). A *different* proposal
  reusing a decided ``client_order_id`` is rejected with ``DUPLICATE_CLIENT_ORDER_ID``;
* an order event whose ``record_id`` was already applied returns ``[]``.

A CANCEL request (``action``) is approved whenever its target is an open (approved,
not terminal) order of the account, halted or not: it only takes risk away. A REPLACE is
checked as the new order it places (price band, notional, filters, ...; the target's
open quantity is not counted twice); while the account or its strategy is HALTED (or
REDUCING) it passes only if it reduces (no more quantity than the target has left, its
limit no more aggressive), else ``TRADING_HALTED``. Either, for a target that is not
open, is refused ``ORDER_NOT_OPEN`` naming it; for another strategy's order (a risk
stop's, say) ``INVALID_ORDER``. The target's reservation ends with its
CANCELLED event; a REPLACE reserves its own quantity like a new order.

Both memories are bounded (``memory`` entries each, oldest forgotten first).

Mark-to-market output is throttled: on a book update, ``Position``/``PnL`` records of an
affected account are emitted at most once per ``mark_interval_ns`` of event time (and
always when a stop or the breaker fires). Every fill emits them unthrottled.

``now_ns`` (the ``ts_init`` of produced records) defaults to the input record's ``ts_init``
so a replay produces byte-identical records.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import islice
from typing import Any

from algostream.config import RiskConfig, StrategySpec
from algostream.model.enums import (
    ControlAction,
    OrderAction,
    OrderStatus,
    RiskEventKind,
    Side,
    TradingState,
)
from algostream.model.ids import derive_id
from algostream.model.records import (
    BookIntegrity,
    BookTop,
    ControlCommand,
    MarkPrice,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    PnL,
    Position,
    Record,
    RiskEvent,
)
from algostream.risk.breaker import ALL_INSTRUMENTS, RECONCILIATION_ACTOR, CircuitBreaker
from algostream.risk.errors import StateRestoreError
from algostream.risk.futures import Funding, FuturesGate
from algostream.risk.ledger import AVG_CONTEXT, ZERO, AccountLedger, PositionLedger
from algostream.risk.limits import (
    InstrumentFilters,
    OrderRateWindow,
    PreTradeChecker,
    PreTradeContext,
    Rejection,
    RejectReason,
    approved_record,
    rejected_record,
)
from algostream.risk.stops import (
    NEVER_TRIPS,
    StopManager,
    closing_order,
    stop_event,
    stop_proposal,
)

STATE_VERSION = 1
HUNDRED = Decimal(100)
#: the newest applied event ids kept in the small state itself (see :meth:`to_state`)
RECENT_APPLIED = 256
#: the newest decisions kept in the small state itself, for the same reason
RECENT_DECIDED = 32
FLATTEN_STRATEGY = "risk-flatten"
Decision = OrderRequest | OrderRejected
#: one UTC day in ns (a strategy's daily loss is counted from its start)
DAY_NS = 86_400 * 1_000_000_000
STRATEGY_HALTED = "STRATEGY_HALTED"
STRATEGY_POSITION = "STRATEGY_MAX_POSITION_SIZE"


def _inside_stop(direction: int, price: Decimal | None, best: Decimal, trip: Decimal) -> bool:
    """The exit price (``direction`` 1: a long's best bid, -1: a short's best ask) neither
    moves the stop's trailing reference ``best`` nor reaches its trip price, as
    :meth:`StopManager.evaluate` keeps them (``NEVER_TRIPS``: no stop is on)."""
    if price is None:
        return False
    if direction > 0:
        return price <= best and (trip is NEVER_TRIPS or price > trip)
    return price >= best and (trip is NEVER_TRIPS or price < trip)


@dataclass(slots=True)
class _Quiet:
    """What a book top found of one position when it changed nothing but the mark (see
    :meth:`RiskProcessor.on_book_top`): it holds while the ledger's ``version`` and
    ``peak`` (the object) and the stop trackers' ``stops`` count are the same."""

    version: int
    peak: Decimal
    #: the position's ``_last_emit`` then (no Position/PnL record due before its interval)
    emitted: int
    stops: int
    #: the stop to watch: 1 a long's (best bid), -1 a short's (best ask), 0 none (no
    #: tracker, or its stop fired)
    direction: int
    #: its trailing reference and trip price then (``NEVER_TRIPS``: no stop is on)
    best: Decimal
    trip: Decimal
    #: the exit price last found quiet (the same object again: quiet, no comparison)
    price: Decimal | None


@dataclass(slots=True)
class PendingOrder:
    """An approved order that has not reached a terminal state yet."""

    account: str
    instrument: str
    side: Side
    remaining: Decimal
    strategy: str | None = None


class RiskProcessor:
    """Risk stage of the pipeline; pure logic, time passed in.

    >>> from algostream.config import RiskConfig
    >>> p = RiskProcessor(RiskConfig())
    >>> RiskProcessor.from_state(RiskConfig(), None, p.to_state()).to_state() == p.to_state()
    True
    """

    def __init__(
        self,
        config: RiskConfig,
        filters: dict[str, InstrumentFilters] | None = None,
        *,
        mark_interval_ns: int = 1_000_000_000,
        memory: int = 100_000,
        max_stop_attempts: int = 3,
        strategies: tuple[StrategySpec, ...] = (),
        shadow: bool = False,
    ) -> None:
        self.config = config
        #: the gate of the shadow worker (True) or of the account (False): each refuses
        #: the other's strategies, so a shadow order can never be approved for the venue
        self.shadow = shadow
        #: ``signal.strategies``: each one's fills are also kept in its own ledger (its
        #: ``Position``/``PnL`` records carry its id) and its budget is checked; none (the
        #: single ``signal.strategy``): the account is the strategy, records as before
        self.specs = {spec.id: spec for spec in strategies}
        #: (account, strategy) -> that strategy's own ledger in the account
        self.books: dict[tuple[str, str], AccountLedger] = {}
        #: halted strategy -> why (operator or its budget); its new orders are refused
        self.halted: dict[str, str] = {}
        #: (account, strategy) -> (UTC day number, equity when that day began)
        self._days: dict[tuple[str, str], tuple[int, Decimal]] = {}
        self.filters = dict(filters or {})
        self.mark_interval_ns = mark_interval_ns
        self.memory = memory
        self.checker = PreTradeChecker(config)
        #: ``BINANCE_USDM:*`` orders: leverage, margin, liquidation, reduce-only; funding
        self.futures = FuturesGate(config)
        #: funding settled since :meth:`take_fundings` was last called
        self.fundings: list[Funding] = []
        self.breaker = CircuitBreaker(config)
        self.stops = StopManager(
            config.stop_loss_percent, config.trailing_stop_percent, max_stop_attempts
        )
        self.ledgers: dict[str, AccountLedger] = {}
        self._tops: dict[str, BookTop] = {}
        self._rates: dict[str, OrderRateWindow] = {}
        self._pending: dict[str, PendingOrder] = {}
        self._pending_totals: dict[tuple[str, str, Side], Decimal] = {}
        #: client order id -> (proposal id, decision, its number: decisions made so far)
        self._decided: OrderedDict[str, tuple[str, Decision, int]] = OrderedDict()
        self._decisions = 0  # decisions made (their effects are in this state)
        #: the newest RECENT_DECIDED decisions: client order id -> its entry in the small
        #: state (made once, when first written: not on the proposal's own path)
        self._recent_decided: OrderedDict[str, list[Any] | None] = OrderedDict()
        self._applied: OrderedDict[str, None] = OrderedDict()
        self._last_emit: dict[tuple[str, str], int] = {}
        #: position -> what the last top that changed nothing but its mark found (not
        #: state: a cache, see on_book_top)
        self._quiet: dict[PositionLedger, _Quiet] = {}

    # ------------------------------------------------------------------ queries

    def ledger(self, account: str) -> AccountLedger:
        """The ledger of ``account`` (created empty on first use)."""
        ledger = self.ledgers.get(account)
        if ledger is None:
            ledger = AccountLedger(account, self.config.cost_method, self.config.starting_equity)
            self.ledgers[account] = ledger
        return ledger

    def attributed(self, strategy: str) -> str | None:
        """``strategy`` if fills are attributed to strategies (else None: the account)."""
        return strategy if self.specs else None

    def book(self, account: str, strategy: str) -> AccountLedger:
        """The ledger of ``strategy``'s own fills in ``account`` (created empty)."""
        book = self.books.get((account, strategy))
        if book is None:
            book = AccountLedger(account, self.config.cost_method, self.config.starting_equity)
            self.books[(account, strategy)] = book
        return book

    def accounts(self) -> list[str]:
        """Every account known: the configured one first, then those seen in fills."""
        return list(dict.fromkeys([self.config.account, *self.ledgers]))

    def pending_quantity(self, account: str, instrument: str, side: Side) -> Decimal:
        """Remaining quantity of approved open orders of ``account`` on ``side``."""
        return self._pending_totals.get((account, instrument, side), ZERO)

    def _add_pending(self, coid: str, pending: PendingOrder) -> None:
        self._pending[coid] = pending
        key = (pending.account, pending.instrument, pending.side)
        self._pending_totals[key] = self._pending_totals.get(key, ZERO) + pending.remaining

    def _set_pending_remaining(self, coid: str, remaining: Decimal) -> None:
        pending = self._pending[coid]
        key = (pending.account, pending.instrument, pending.side)
        total = self._pending_totals[key] - pending.remaining + remaining
        pending.remaining = remaining
        if remaining == 0:
            del self._pending[coid]
        if total:
            self._pending_totals[key] = total
        else:
            del self._pending_totals[key]

    # ------------------------------------------------------------------ proposals

    def on_proposal(self, order: OrderRequest, now_ns: int) -> list[Record]:
        """Decide a proposal: ``[approved OrderRequest]`` or ``[OrderRejected]``."""
        prior = self._decided.get(order.client_order_id)
        if prior is not None:
            if prior[0] == order.record_id:
                return [prior[1]]
            dup = Rejection(
                RejectReason.DUPLICATE_CLIENT_ORDER_ID,
                prior[0],
                order.record_id,
                f"client_order_id {order.client_order_id} was already decided "
                f"for proposal {prior[0]}",
            )
            return [rejected_record(order, dup, now_ns)]
        refused = None if order.action is OrderAction.NEW else self._target_check(order)
        if order.action is OrderAction.NEW or refused is not None:
            refused = refused or self._strategy_check(order)
        if refused is not None:
            decision: Decision = rejected_record(order, refused, now_ns)
        elif order.action is OrderAction.CANCEL:
            decision = approved_record(order, now_ns)
        elif order.action is OrderAction.REPLACE:
            decision = self._replace_decision(order, now_ns)
        else:
            decision = self.checker.decide(order, self._context(order, now_ns), now_ns)
            if isinstance(decision, OrderRequest) and self.futures.is_futures(order.instrument):
                decision = self._futures_check(order, decision, now_ns)
        self._take_effect(decision)
        self._decisions += 1
        self._remember(order.client_order_id, order.record_id, decision, self._decisions)
        return [decision]

    def _target_check(self, order: OrderRequest) -> Rejection | None:
        """A CANCEL / REPLACE of an order that is not open in this account, of another
        strategy's order (a risk stop's, say), or a REPLACE that would turn its side."""
        target = None if order.target_id is None else self._pending.get(order.target_id)
        what = f"{order.action.value} of {order.target_id!r}"
        if target is None or (target.account, target.instrument) != (
            order.account,
            order.instrument,
        ):
            return Rejection(
                RejectReason.ORDER_NOT_OPEN,
                "OPEN_ORDER",
                str(order.target_id),
                f"{what}: not an open order of {order.account} in {order.instrument}",
            )
        prior = self._decided.get(str(order.target_id))
        approved = prior[1] if prior is not None else None
        owner = approved.strategy if isinstance(approved, OrderRequest) else None
        if owner is not None and owner != order.strategy:
            return Rejection(
                RejectReason.INVALID_ORDER,
                owner,
                order.strategy,
                f"{what}: the order is strategy {owner}'s, not {order.strategy}'s",
            )
        if order.action is OrderAction.REPLACE and order.side is not target.side:
            return Rejection(
                RejectReason.INVALID_ORDER,
                target.side.value,
                order.side.value,
                f"{what}: side {order.side.value}, the order is {target.side.value}",
            )
        return None

    def _replace_decision(self, order: OrderRequest, now_ns: int) -> Decision:
        """A REPLACE whose target is open: checked as a new order (see the module doc)."""
        assert order.target_id is not None
        target = self._pending[order.target_id]
        prior = self._decided.get(order.target_id)
        old = prior[1] if prior is not None else None
        old_limit = old.limit_price if isinstance(old, OrderRequest) else None
        reduces = order.quantity <= target.remaining and (
            old_limit is None
            or order.limit_price is None
            or (order.limit_price - old_limit) * order.side.sign <= 0
        )
        ctx = self._context(order, now_ns)
        ctx = replace(ctx, pending_same_side=max(ctx.pending_same_side - target.remaining, ZERO))
        sid = order.strategy
        if not reduces:
            halted = sid in self.halted or ctx.state is not TradingState.ACTIVE
            if halted and not order.reduce_only:
                why = self.halted.get(sid) or f"{order.instrument} is {ctx.state.value}"
                return rejected_record(
                    order,
                    Rejection(
                        RejectReason.TRADING_HALTED,
                        STRATEGY_HALTED if sid in self.halted else ctx.state.value,
                        str(order.target_id),
                        f"REPLACE of {order.target_id!r} would add risk while halted: {why}",
                    ),
                    now_ns,
                )
        else:
            ctx = replace(ctx, state=TradingState.ACTIVE)
        decision = self.checker.decide(order, ctx, now_ns)
        if isinstance(decision, OrderRequest) and self.futures.is_futures(order.instrument):
            decision = self._futures_check(order, decision, now_ns)
        return decision

    def _futures_check(self, order: OrderRequest, approved: Decision, now_ns: int) -> Decision:
        """A futures order the other checks approved: leverage bracket, margin available,
        distance to liquidation, reduce-only (:mod:`algostream.risk.futures`)."""
        top = self._tops.get(order.instrument)
        mark = top.mid if top is not None and top.mid is not None else None
        if mark is None:
            return approved  # the band check refused orders without a book already
        ledger = self.ledgers.get(order.account)
        inst = order.instrument
        pending = self.pending_quantity(order.account, inst, Side.BUY) - self.pending_quantity(
            order.account, inst, Side.SELL
        )
        refusal = self.futures.check(order, ledger, self.config.starting_equity, mark, pending)
        if refusal is None:
            return approved
        reason = RejectReason(refusal.reason)
        return rejected_record(
            order, Rejection(reason, refusal.limit, refusal.value, refusal.message), now_ns
        )

    def on_mark_price(self, mark: MarkPrice, now_ns: int | None = None) -> list[Record]:
        """Futures funding: a funding time the previous mark announced is settled on every
        account's position once a mark is at or past it; Position + PnL of each."""
        now = mark.ts_init if now_ns is None else now_ns
        paid = self.futures.on_mark_price(mark, list(self.ledgers.values()))
        out: list[Record] = []
        for f in paid:
            self.fundings.append(f)
            ledger = self.ledgers[f.account]
            ledger.set_mark(f.instrument, ledger.positions[f.instrument].mark_price or f.mark)
            out.append(
                ledger.positions[f.instrument].to_record(
                    ts_event=mark.ts_event, ts_init=now, cause_id=mark.record_id
                )
            )
            out.append(
                ledger.pnl_record(ts_event=mark.ts_event, ts_init=now, cause_id=mark.record_id)
            )
            out += [c.to_event(mark, now) for c in self.breaker.check_account(ledger)]
            for (account, sid), book in self.books.items():  # each strategy its own part
                pos = book.positions.get(f.instrument)
                if account == f.account and pos is not None and pos.quantity:
                    pos.apply_funding(-pos.quantity * f.mark * f.rate)
                    out += self._strategy_outputs(account, sid, mark, now, throttle=False)
        return out

    def take_fundings(self) -> list[Funding]:
        """The funding settled since the last call (for the worker's metrics)."""
        out, self.fundings = self.fundings, []
        return out

    def _strategy_check(self, order: OrderRequest) -> Rejection | None:
        """A halted strategy's order (not reduce-only), or one past its ``max_position_size``
        (its own position and approved open orders on that side)."""
        sid = order.strategy
        spec = self.specs.get(sid)
        if spec is not None and spec.shadow != self.shadow:
            return Rejection(
                RejectReason.TRADING_HALTED,
                "SHADOW_STRATEGY" if spec.shadow else "LIVE_STRATEGY",
                sid,
                f"strategy {sid} is {'a shadow' if spec.shadow else 'a live'} strategy: "
                f"its orders never pass the {'shadow' if self.shadow else 'live'} gate",
            )
        if sid in self.halted and not order.reduce_only:
            return Rejection(
                RejectReason.TRADING_HALTED,
                STRATEGY_HALTED,
                sid,
                f"strategy {sid} is halted: {self.halted[sid]}",
            )
        spec = self.specs.get(sid)
        if spec is None or spec.max_position_size is None or order.reduce_only:
            return None
        book = self.books.get((order.account, sid))
        held = ZERO if book is None else book.quantity(order.instrument)
        pending = sum(
            (
                p.remaining
                for p in self._pending.values()
                if p.strategy == sid and p.instrument == order.instrument and p.side is order.side
            ),
            ZERO,
        )
        after = held + order.side.sign * (order.quantity + pending)
        if abs(after) <= spec.max_position_size or abs(after) <= abs(held):
            return None
        return Rejection(
            RejectReason.MAX_POSITION_SIZE,
            f"{STRATEGY_POSITION}={spec.max_position_size}",
            str(after),
            f"strategy {sid} position would be {after}, over its max_position_size "
            f"{spec.max_position_size}",
        )

    def _take_effect(self, decision: Decision) -> None:
        """What a new decision changes: an approval reserves its quantity (pending until
        filled or cancelled) and counts in its account's order rate; a rejected stop order
        is a failed close attempt. (An approval is the proposal with a new id: same
        account, instrument, side, quantity and event time.)"""
        coid = decision.client_order_id
        if isinstance(decision, OrderRejected):
            if self.stops.is_stop_order(coid):
                self.stops.on_close_failed(coid)
        elif decision.action is not OrderAction.CANCEL:  # a cancel reserves nothing
            account = decision.account
            self._rate(account).record(decision.ts_event)
            pending = PendingOrder(
                account,
                decision.instrument,
                decision.side,
                decision.quantity,
                decision.strategy if self.specs else None,
            )
            self._add_pending(coid, pending)

    def _remember(self, coid: str, proposal_id: str, decision: Decision, number: int) -> None:
        self._decided[coid] = (proposal_id, decision, number)
        while len(self._decided) > self.memory:
            self._decided.popitem(last=False)
        self._recent_decided[coid] = None  # written out by _small_state
        while len(self._recent_decided) > RECENT_DECIDED:
            self._recent_decided.popitem(last=False)

    def _rate(self, account: str) -> OrderRateWindow:
        window = self._rates.get(account)
        if window is None:
            window = self._rates[account] = OrderRateWindow()
        return window

    def _context(self, order: OrderRequest, now_ns: int) -> PreTradeContext:
        ledger = self.ledgers.get(order.account)
        positions: dict[str, Decimal] = {}
        marks: dict[str, Decimal] = {}
        if ledger is not None:
            for inst, pos in ledger.positions.items():
                if pos.quantity:
                    positions[inst] = pos.quantity
                    marks[inst] = pos.avg_price if pos.mark_price is None else pos.mark_price
        window = self._rates.get(order.account)
        return PreTradeContext(
            state=self.breaker.state(order.account, order.instrument),
            position=positions.get(order.instrument, ZERO),
            pending_same_side=self.pending_quantity(order.account, order.instrument, order.side),
            other_positions=positions,
            other_marks=marks,
            top=self._tops.get(order.instrument),
            filters=self.filters.get(order.instrument),
            orders_in_window=0 if window is None else window.count(order.ts_event),
            age_ns=now_ns - order.ts_init,
            halt_reason=self.breaker.mismatch_reason(order.account),
        )

    # ------------------------------------------------------------------ market data

    def top(self, instrument: str) -> BookTop | None:
        """The newest book top seen for ``instrument`` (the gate's mark and price band)."""
        return self._tops.get(instrument)

    def on_book_top(self, top: BookTop, now_ns: int | None = None) -> list[Record]:
        """Mark positions, run stops and the breaker; throttled Position/PnL records.

        Most tops with a position change nothing but the mark, and skip the full path
        (:meth:`_mark_outputs`) when it would return nothing and change nothing: no
        Position/PnL record due yet (``mark_interval_ns``), no breaker layer set, the
        account clear (found so at this ledger version and peak, as ``check_account``
        remembers it), and the stop's exit price neither moving its trailing reference
        nor reaching its trip price, as :meth:`StopManager.evaluate` keeps them (a trip
        price to work out after a fill: the full path). Anything else: the full path, as
        it always ran (a breach found by ``is_clear`` is tripped there, after the stop).

        What such a top found is kept per position (:class:`_Quiet`) while nothing it
        depends on can have changed: the ledger's version (every mark that moves it, fill
        and funding) and peak (the object), the stop trackers' count of changes. The next
        top then asks only what a top brings: its mark (the same object: no comparison),
        its time against the record interval, the breaker's layers, its exit price
        against the trailing reference and the trip price kept.
        """
        inst = top.instrument
        self._tops[inst] = top
        mid = top.mid
        out: list[Record] = []
        breaker = self.breaker
        quiet = self._quiet
        for ledger in self.ledgers.values():
            pos = ledger.positions.get(inst)
            if pos is None:
                continue
            q = quiet.get(pos)
            if q is not None and (q.version != ledger.version or q.peak is not ledger.peak_equity):
                q = None  # (a fill, a funding, a mark that moved or a new peak since)
            moved = False
            if mid is not None:
                last = pos.mark_price
                # the same mark object with the memo valid: equity <= peak as found then
                if (mid is not last or q is None) and (
                    last is None
                    or mid != last
                    or not mid.same_quantum(last)
                    or ledger.equity_value > ledger.peak_equity  # (a funding raised it)
                ):
                    ledger.set_mark(inst, mid)
                    moved = True
                # else the same mark (most tops): P&L, equity and peak as they were
            if not pos.quantity:
                continue
            if (
                q is not None
                and top.ts_event - q.emitted < self.mark_interval_ns
                and q.stops == self.stops.changes
                and not breaker.any_layer()
                # a mark that moved changed equity and the peak only: the breaker asked
                and (not moved or breaker.is_clear(ledger))
            ):
                found = True
                direction = q.direction
                if direction:
                    price = top.best_bid if direction > 0 else top.best_ask
                    if price is not q.price:  # (else found quiet with this very price)
                        found = _inside_stop(direction, price, q.best, q.trip)
                        if found:
                            q.price = price
                if found:
                    if moved:  # (the mark's own version and peak: the rest as found)
                        q.version, q.peak = ledger.version, ledger.peak_equity
                    continue
            key = (ledger.account, inst)
            emitted = self._last_emit.get(key)
            if (
                emitted is not None
                and top.ts_event - emitted < self.mark_interval_ns
                and not breaker.any_layer()
                and breaker.is_clear(ledger)  # (a moved mark: decided there)
            ):
                tracker = self.stops._trackers.get(key)
                if tracker is None or tracker.fired:
                    self._found_quiet(ledger, pos, emitted)
                    continue
                trip = tracker.trip
                if trip is not None and tracker.trip_avg is pos.avg_price:
                    direction = 1 if tracker.direction > 0 else -1
                    price = top.best_bid if direction > 0 else top.best_ask
                    if _inside_stop(direction, price, tracker.best_price, trip):
                        self._found_quiet(
                            ledger, pos, emitted, direction, tracker.best_price, trip, price
                        )
                        continue
            if q is not None:
                del quiet[pos]  # (the full path moves what it found: found again after)
            out += self._mark_outputs(ledger, top, top.ts_init if now_ns is None else now_ns)
        if self.books:
            now = top.ts_init if now_ns is None else now_ns
            for (account, sid), book in self.books.items():
                spos = book.positions.get(inst)
                if spos is None:
                    continue
                if mid is not None:
                    book.set_mark(inst, mid)
                if spos.quantity:
                    out.extend(self._strategy_outputs(account, sid, top, now, throttle=True))
        return out

    def _found_quiet(
        self,
        ledger: AccountLedger,
        pos: PositionLedger,
        emitted: int,
        direction: int = 0,
        best: Decimal = NEVER_TRIPS,
        trip: Decimal = NEVER_TRIPS,
        price: Decimal | None = None,
    ) -> None:
        """Keep what a top found of ``pos`` (it changed nothing but the mark) for the next
        tops (:class:`_Quiet`): the trailing reference and trip price of its stop, if one
        is to be watched (``direction``), at this ledger version and peak."""
        if ledger.equity_value > ledger.peak_equity:
            return  # (a funding raised equity and no mark came: the next mark moves the peak)
        q = self._quiet.get(pos)
        if q is None:
            self._quiet[pos] = _Quiet(
                ledger.version,
                ledger.peak_equity,
                emitted,
                self.stops.changes,
                direction,
                best,
                trip,
                price,
            )
            return
        q.version, q.peak, q.emitted, q.stops = (
            ledger.version,
            ledger.peak_equity,
            emitted,
            self.stops.changes,
        )
        q.direction, q.best, q.trip, q.price = direction, best, trip, price

    def _strategy_outputs(
        self, account: str, sid: str, cause: Record, now: int, *, throttle: bool
    ) -> list[Record]:
        """A strategy's Position + PnL records (``throttle``: at most once per
        ``mark_interval_ns``) and the halt its budget calls for."""
        book = self.books[(account, sid)]
        inst = cause.instrument
        out: list[Record] = self._budget(account, sid, book, cause, now)
        key = (f"{account}|{sid}", inst)
        last = self._last_emit.get(key)
        if (
            throttle
            and not out
            and last is not None
            and cause.ts_event - last < self.mark_interval_ns
        ):
            return out
        self._last_emit[key] = cause.ts_event
        pos = book.positions[inst].to_record(
            ts_event=cause.ts_event, ts_init=now, cause_id=cause.record_id
        )
        pnl = book.pnl_record(ts_event=cause.ts_event, ts_init=now, cause_id=cause.record_id)
        out.append(
            pos.model_copy(update={"strategy": sid, "record_id": derive_id(pos.record_id, sid)})
        )
        out.append(
            pnl.model_copy(update={"strategy": sid, "record_id": derive_id(pnl.record_id, sid)})
        )
        return out

    def _budget(
        self, account: str, sid: str, book: AccountLedger, cause: Record, now: int
    ) -> list[Record]:
        """Halt ``sid`` when its daily loss or drawdown passes its budget (once)."""
        day = cause.ts_event // DAY_NS
        start = self._days.get((account, sid))
        if start is None or start[0] != day:
            # the day's first record: equity before this fill/mark is not kept, so a new
            # day starts at the equity now (a loss on the day's first record counts next)
            start = self._days[(account, sid)] = (day, book.equity)
        spec = self.specs.get(sid)
        if spec is None or sid in self.halted:
            return []
        # on every mark: the book's kept equity value (O(1)), its sum only for the message
        why = None
        if spec.max_daily_loss is not None and start[1] - book.equity_value > spec.max_daily_loss:
            why = f"daily loss {start[1] - book.equity} over max_daily_loss {spec.max_daily_loss}"
        if spec.max_drawdown_percent is not None:
            peak = book.peak_equity
            amount = max(peak - book.equity_value, ZERO)
            dd = AVG_CONTEXT.divide(amount * HUNDRED, peak) if peak > 0 else ZERO
            if dd > spec.max_drawdown_percent:
                why = f"drawdown {dd:.4f}% over max_drawdown_percent {spec.max_drawdown_percent}"
        if why is None:
            return []
        self.halted[sid] = why
        return [self._strategy_event(sid, account, cause, now, "risk", why, TradingState.HALTED)]

    def _strategy_event(
        self,
        sid: str,
        account: str | None,
        cause: Record,
        now: int,
        actor: str,
        reason: str,
        state: TradingState,
    ) -> RiskEvent:
        previous = TradingState.ACTIVE if state is TradingState.HALTED else TradingState.HALTED
        detail = {"layer": "strategy", "strategy": sid}
        if account is not None:
            detail["account"] = account
        return RiskEvent(
            instrument=ALL_INSTRUMENTS,
            ts_event=cause.ts_event,
            ts_init=now,
            record_id=derive_id("risk-event", cause.record_id, "strategy", sid, state.value),
            lineage_id=cause.record_id,
            kind=RiskEventKind.BREAKER_TRIPPED if actor == "risk" else RiskEventKind.CONTROL,
            state=state,
            previous_state=previous,
            actor=actor,
            reason=reason,
            detail=detail,
        )

    def _mark_outputs(self, ledger: AccountLedger, top: BookTop, now: int) -> list[Record]:
        inst, account = top.instrument, ledger.account
        pos = ledger.positions[inst]
        breaker = self.breaker
        # On every top with a position: the breaker's own answers read here where they
        # are known without a call (no layer set: ACTIVE; the account found clear at this
        # ledger version and peak: no change); each is what its method would return.
        state = TradingState.ACTIVE
        if breaker.any_layer():
            state = breaker.state(account, inst)
        hit = None
        # While HALTED a close would be refused anyway: keep the stop armed for RESUME.
        if state is not TradingState.HALTED:
            hit = self.stops.evaluate(account, inst, pos.quantity, pos.avg_price, top)
        out: list[Record] = []
        if hit is not None:
            out += [stop_proposal(hit, top, now), stop_event(hit, state, top, now)]
        if not breaker.found_clear(ledger):
            out += [c.to_event(top, now) for c in breaker.check_account(ledger)]
        last = self._last_emit.get((account, inst))
        if out or last is None or top.ts_event - last >= self.mark_interval_ns:
            self._last_emit[(account, inst)] = top.ts_event
            out.append(pos.to_record(ts_event=top.ts_event, ts_init=now, cause_id=top.record_id))
            out.append(
                ledger.pnl_record(ts_event=top.ts_event, ts_init=now, cause_id=top.record_id)
            )
        return out

    def on_integrity(self, event: BookIntegrity, now_ns: int | None = None) -> list[Record]:
        """A book problem moves its instrument to REDUCING; RESYNCED restores it."""
        now = event.ts_init if now_ns is None else now_ns
        return [c.to_event(event, now) for c in self.breaker.on_integrity(event)]

    # ------------------------------------------------------------------ orders

    def on_order_event(self, event: OrderEvent, now_ns: int | None = None) -> list[Record]:
        """Track open orders; a fill updates the ledger and emits Position + PnL (+ events)."""
        if event.record_id in self._applied:
            return []
        self._applied[event.record_id] = None
        while len(self._applied) > self.memory:
            self._applied.popitem(last=False)
        now = event.ts_init if now_ns is None else now_ns
        held = self._pending.get(event.client_order_id)
        sid = event.strategy or (None if held is None else held.strategy)
        self._track_pending(event)
        if event.fill_qty <= 0 or event.fill_price is None:
            return []
        ledger = self.ledger(event.account)
        inst = event.instrument
        result = ledger.apply_fill(inst, event.side, event.fill_qty, event.fill_price, event.fee)
        top = self._tops.get(inst)
        mark = top.mid if top is not None and top.mid is not None else event.fill_price
        ledger.set_mark(inst, mark)
        self.stops.on_position(
            event.account,
            inst,
            result.previous_quantity,
            result.quantity,
            event.fill_price,
            event.record_id,
        )
        self._last_emit[(event.account, inst)] = event.ts_event
        out: list[Record] = [
            ledger.positions[inst].to_record(
                ts_event=event.ts_event, ts_init=now, cause_id=event.record_id
            ),
            ledger.pnl_record(ts_event=event.ts_event, ts_init=now, cause_id=event.record_id),
        ]
        out += [c.to_event(event, now) for c in self.breaker.check_account(ledger)]
        if self.specs and sid in self.specs:
            book = self.book(event.account, sid)
            book.apply_fill(inst, event.side, event.fill_qty, event.fill_price, event.fee)
            book.set_mark(inst, mark)
            out += self._strategy_outputs(event.account, sid, event, now, throttle=False)
        elif self.specs:
            out += self._allocate(event, mark, now)
        return out

    def _allocate(self, event: OrderEvent, mark: Decimal, now: int) -> list[Record]:
        """A fill in no strategy's name (a stop, a flatten, the backtest's close at the
        end) closes the strategies' positions it reduces, in configured order, at its
        price (the fee pro rata): the strategies' positions still add up to the account's."""
        assert event.fill_price is not None
        left, out = event.fill_qty, []
        for sid in self.specs:
            book = self.books.get((event.account, sid))
            held = ZERO if book is None else book.quantity(event.instrument)
            if book is None or not held or (held > 0) == (event.side is Side.BUY):
                continue  # flat, or the fill adds to it: not this strategy's close
            part = min(left, abs(held))
            fee = event.fee * part / event.fill_qty
            book.apply_fill(event.instrument, event.side, part, event.fill_price, fee)
            book.set_mark(event.instrument, mark)
            out += self._strategy_outputs(event.account, sid, event, now, throttle=False)
            left -= part
            if not left:
                break
        return out

    def _track_pending(self, event: OrderEvent) -> None:
        coid = event.client_order_id
        lid = event.list_id
        if lid is not None and lid != coid and event.status.is_terminal and lid in self._pending:
            self._set_pending_remaining(lid, ZERO)  # an OCO ends with its first leg's end
        if event.status.is_terminal:
            if coid in self._pending:
                self._set_pending_remaining(coid, ZERO)
            if event.status is not OrderStatus.FILLED and self.stops.is_stop_order(coid):
                self.stops.on_close_failed(coid)
        elif coid in self._pending:
            self._set_pending_remaining(coid, max(event.quantity - event.cum_qty, ZERO))

    def on_risk_event(self, event: RiskEvent, now_ns: int | None = None) -> list[Record]:
        """A position reconciliation's record (actor ``reconciliation``, detail
        ``account``): HALTED halts the account naming the mismatch, ACTIVE lifts such a
        halt (its ``STATE_CHANGED`` record); any other record changes nothing."""
        account = event.detail.get("account")
        if event.actor != RECONCILIATION_ACTOR or not account:
            return []
        now = event.ts_init if now_ns is None else now_ns
        halt = event.reason if event.state is TradingState.HALTED else None
        return [c.to_event(event, now) for c in self.breaker.on_reconciliation(account, halt)]

    # ------------------------------------------------------------------ operator

    def on_control(self, cmd: ControlCommand, now_ns: int | None = None) -> list[Record]:
        """HALT / REDUCE / RESUME / FLATTEN (``ALL:*`` = every instrument)."""
        now = cmd.ts_init if now_ns is None else now_ns
        if cmd.strategy is not None:
            return self._strategy_control(cmd, now)
        out: list[Record] = [
            c.to_event(cmd, now) for c in self.breaker.on_control(cmd, self.accounts())
        ]
        if cmd.action is ControlAction.FLATTEN:
            out += self._flatten(cmd, now)
        elif cmd.action is ControlAction.RESUME:
            for ledger in self.ledgers.values():
                out += [c.to_event(cmd, now) for c in self.breaker.check_account(ledger)]
        return out

    def _strategy_control(self, cmd: ControlCommand, now: int) -> list[Record]:
        """HALT / RESUME / FLATTEN one strategy; the others trade on (REDUCE: as HALT)."""
        sid = cmd.strategy
        assert sid is not None
        out: list[Record] = []
        if cmd.action is ControlAction.RESUME:
            if self.halted.pop(sid, None) is not None:
                out.append(
                    self._strategy_event(
                        sid, None, cmd, now, cmd.actor, cmd.reason, TradingState.ACTIVE
                    )
                )
            return out
        if sid not in self.halted:
            self.halted[sid] = f"{cmd.action.value} by {cmd.actor}: {cmd.reason}"
            out.append(
                self._strategy_event(
                    sid, None, cmd, now, cmd.actor, cmd.reason, TradingState.HALTED
                )
            )
        if cmd.action is ControlAction.FLATTEN:
            for (account, owner), book in self.books.items():
                if owner != sid:
                    continue
                for pos in book.open_positions():
                    if cmd.instrument not in (ALL_INSTRUMENTS, pos.instrument):
                        continue
                    top = self._tops.get(pos.instrument)
                    coid = "flat-" + derive_id(cmd.record_id, account, sid, pos.instrument)
                    out.append(
                        closing_order(
                            account=account,
                            instrument=pos.instrument,
                            position=pos.quantity,
                            client_order_id=coid,
                            strategy=sid,
                            cause_id=cmd.record_id,
                            ts_event=cmd.ts_event,
                            ts_init=now,
                            arrival_mid=None if top is None else top.mid,
                        )
                    )
        return out

    def _flatten(self, cmd: ControlCommand, now: int) -> list[Record]:
        out: list[Record] = []
        for ledger in self.ledgers.values():
            for pos in ledger.open_positions():
                if cmd.instrument not in (ALL_INSTRUMENTS, pos.instrument):
                    continue
                top = self._tops.get(pos.instrument)
                coid = "flat-" + derive_id(cmd.record_id, ledger.account, pos.instrument)
                out.append(
                    closing_order(
                        account=ledger.account,
                        instrument=pos.instrument,
                        position=pos.quantity,
                        client_order_id=coid,
                        strategy=FLATTEN_STRATEGY,
                        cause_id=cmd.record_id,
                        ts_event=cmd.ts_event,
                        ts_init=now,
                        arrival_mid=None if top is None else top.mid,
                    )
                )
        return out

    # ------------------------------------------------------------------ state

    def decision_state(self, client_order_id: str) -> list[Any] | None:
        """``[proposal_id, kind, record, number]`` of a decided order, as in
        ``to_state()['decided']`` (``number``: the decisions made up to it, this one
        included; the state carries its own count as ``decisions``)."""
        prior = self._decided.get(client_order_id)
        if prior is None:
            return None
        pid, decision, number = prior
        return [pid, type(decision).__name__, decision.model_dump(mode="json"), number]

    def to_state(self, *, memories: bool = True) -> dict[str, Any]:
        """Everything needed to continue exactly where this processor is (JSON-able).

        With ``memories=False`` the two de-duplication memories (``decided``, ``applied``)
        are left out: the risk agent keeps those per key in their own tables. The newest
        ``RECENT_APPLIED`` applied ids stay in (``recent_applied``): the ledgers and the
        ids of the fills in them are then one record, so a crash between writing the state
        and the id's own key cannot make a re-delivered fill count twice (seen in the kill
        -9 test: a position one fill too long). Likewise the newest ``RECENT_DECIDED``
        decisions (``recent_decided``): the reservations of pending orders and the decisions
        that made them are one record, so a re-delivered proposal is answered with its
        decision, not decided a second time with its own reservation already counted.
        The reverse (a decision's own key landed, the state with its reservation did not)
        is told by the decisions' numbers: a decision numbered past the state's count of
        ``decisions`` takes its effect again when restored (:meth:`_restore`).
        """
        if not memories:
            return self._small_state()
        return self._small_state() | {
            "decided": [
                [coid, pid, type(d).__name__, d.model_dump(mode="json"), number]
                for coid, (pid, d, number) in self._decided.items()
            ],
            "applied": list(self._applied),
        }

    def _small_state(self) -> dict[str, Any]:
        return (
            {
                "version": STATE_VERSION,
                "ledgers": [ledger.to_state() for ledger in self.ledgers.values()],
                "tops": [top.model_dump(mode="json") for top in self._tops.values()],
                "rates": {acc: w.to_state() for acc, w in self._rates.items()},
                "pending": [
                    [coid, p.account, p.instrument, p.side.value, str(p.remaining)]
                    + ([] if p.strategy is None else [p.strategy])
                    for coid, p in self._pending.items()
                ],
                "last_emit": [[acc, inst, ts] for (acc, inst), ts in self._last_emit.items()],
                "stops": self.stops.to_state(),
                "breaker": self.breaker.to_state(),
                "recent_applied": list(islice(reversed(self._applied), RECENT_APPLIED))[::-1],
                "recent_decided": self._recent_entries(),
                "decisions": self._decisions,
            }
            | self._strategy_state()
            | self._futures_state()
        )

    def _futures_state(self) -> dict[str, Any]:
        if not self.futures.last_mark:
            return {}  # no futures: the state as it always was
        return {"futures": self.futures.to_state()}

    def _strategy_state(self) -> dict[str, Any]:
        if not self.specs and not self.halted:
            return {}  # one strategy: the state as it always was
        return {
            "books": [[a, s, b.to_state()] for (a, s), b in self.books.items()],
            "halted": dict(self.halted),
            "days": [[a, s, d, str(e)] for (a, s), (d, e) in self._days.items()],
        }

    def _recent_entries(self) -> list[list[Any]]:
        out = []
        for coid, entry in self._recent_decided.items():
            if entry is None:
                entry = self._recent_decided[coid] = [coid, *(self.decision_state(coid) or ())]
            if len(entry) > 1:  # else forgotten (memory bound) before it was written
                out.append(entry)
        return out

    @classmethod
    def from_state(
        cls,
        config: RiskConfig,
        filters: dict[str, InstrumentFilters] | None,
        state: dict[str, Any],
        **kwargs: Any,
    ) -> RiskProcessor:
        """A processor that continues from :meth:`to_state` output."""
        if state.get("version") != STATE_VERSION:
            raise StateRestoreError(
                f"risk state 'version' = {state.get('version')!r}: expected {STATE_VERSION}"
            )
        proc = cls(config, filters, **kwargs)
        try:
            proc._restore(state)
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            raise StateRestoreError(f"risk state: cannot restore, {exc!r}") from None
        return proc

    def _restore(self, state: dict[str, Any]) -> None:
        for item in state["ledgers"]:
            ledger = AccountLedger.from_state(item)
            self.ledgers[ledger.account] = ledger
        for item in state["tops"]:
            top = BookTop.model_validate(item)
            self._tops[top.instrument] = top
        self._rates = {a: OrderRateWindow.from_state(s) for a, s in state["rates"].items()}
        for coid, acc, inst, side, remaining, *sid in state["pending"]:
            pending = PendingOrder(acc, inst, Side(side), Decimal(remaining), *sid[:1])
            self._add_pending(coid, pending)
        for acc, sid, book in state.get("books", ()):
            self.books[(acc, sid)] = AccountLedger.from_state(book)
        self.halted = dict(state.get("halted", {}))
        self._days = {(a, s): (int(d), Decimal(e)) for a, s, d, e in state.get("days", ())}
        recent = state.get("recent_decided", ())
        counted = state.get("decisions")  # None: a state written before decisions counted
        self._decisions = int(counted or 0)
        orphans: list[tuple[int, str, str, Decision]] = []
        # a recent one whose own key was not written before a crash is known from the state
        for coid, pid, kind, data, *number in [*state["decided"], *recent]:
            if coid in self._decided:
                continue
            model = OrderRequest if kind == "OrderRequest" else OrderRejected
            decision, n = model.model_validate(data), int(number[0]) if number else 0
            if counted is not None and n > counted:
                orphans.append((n, coid, pid, decision))  # its key landed, its state did not
            else:
                self._decided[coid] = (pid, decision, n)
        self._recent_decided.update((entry[0], list(entry)) for entry in recent)
        self._applied = OrderedDict.fromkeys(state["applied"])
        self._applied.update(dict.fromkeys(state.get("recent_applied", ())))
        self._last_emit = {(a, i): int(ts) for a, i, ts in state["last_emit"]}
        self.stops.restore(state["stops"])
        self.breaker.restore(state["breaker"])
        self.futures.restore(state.get("futures", {}))
        for n, coid, pid, decision in sorted(orphans, key=lambda o: o[0]):
            # what the state written with it would have held (a kill -9 between the two
            # table writes): its reservation, rate stamp or failed close attempt
            self._take_effect(decision)
            self._decisions = max(self._decisions, n)
            self._remember(coid, pid, decision, n)


def output_topic(record: Record, *, from_proposal: bool) -> str:
    """The topic a risk output goes to (proposals from stops/flatten go back to risk)."""
    if isinstance(record, OrderRequest):
        return "orders.approved" if from_proposal else "orders.proposed"
    if isinstance(record, OrderRejected):
        return "orders.rejected"
    if isinstance(record, RiskEvent):
        return "risk.events"
    if isinstance(record, Position):
        return "positions"
    if isinstance(record, PnL):
        return "pnl"
    raise TypeError(f"risk produced an unroutable {type(record).__name__}")
