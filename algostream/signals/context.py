"""What a strategy sees and what it can ask for: :class:`StrategyContext` (``self.ctx``).

Every hook (``on_bar``, ``on_book``, ``on_features``) runs with ``self.ctx`` set to its
instrument's context: the position (signed quantity, average price, unrealised P&L),
the account's cash and equity, its open orders, the instrument's filters and the clock
(``now_ns``, the event time of the record being handled; ``price``, its last price).
A strategy places orders through it, in units, as a fraction of equity, or as a target
position, long or short, at market, with a limit or as a stop:

>>> from decimal import Decimal
>>> ctx = StrategyContext("SIM:ABC", FlatPortfolio(Decimal(1000)))
>>> ctx.equity, ctx.position.quantity
(Decimal('1000'), Decimal('0'))
>>> ctx.buy(fraction=Decimal("0.5"), limit=Decimal("99.5"))
>>> ctx.target(units=Decimal("-3"))
>>> [(i.sizing, i.size, i.limit_price) for i in ctx.take_intents()]
[('equity', Decimal('0.5'), Decimal('99.5')), ('target_units', Decimal('-3'), None)]

Each request becomes a :class:`~algostream.model.records.Signal` (``sizing``/``size``/
``limit_price``/``stop_price``) and goes through sizing and risk like any other. The bar
backtest sizes a fraction or a target at the fill price (the next bar's open, as
backtesting.py); live and the tick engine size it when the strategy asks, at ``price``.

A bracket is ``buy``/``sell`` with ``take_profit`` and ``stop_loss``: when the entry has
filled, a take-profit LIMIT and a stop-loss STOP_MARKET close what it filled, the first
to fill cancelling the other. An OCO (:meth:`StrategyContext.oco`) is those two exits
alone, for a position already held:

>>> ctx.buy(Decimal(2), take_profit=Decimal(110), stop_loss=Decimal(95))
>>> ctx.oco(Side.SELL, Decimal(2), take_profit=Decimal(110), stop_loss=Decimal(95))
>>> [(i.order_list, i.side.value, i.limit_price) for i in ctx.take_intents()]
[('BRACKET', 'BUY', None), ('OCO', 'SELL', Decimal('110'))]

The risk gate checks a bracket as one order (the entry's notional) and refuses one whose
take-profit or stop-loss is on the wrong side of the entry (``orders.rejected``, reason
``ORDER_LIST``); an OCO's legs are reduce-only.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from algostream.model.enums import Side
from algostream.model.records import OrderListKind, SignalSizing
from algostream.signals.errors import StrategyOrderError

if TYPE_CHECKING:
    from algostream.model.records import PnL, Position
    from algostream.risk.ledger import AccountLedger
    from algostream.risk.limits import InstrumentFilters
    from algostream.risk.processor import RiskProcessor

ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class PositionView:
    """A position as a strategy sees it (``quantity`` < 0 is short)."""

    quantity: Decimal
    avg_price: Decimal
    unrealized_pnl: Decimal


FLAT = PositionView(ZERO, ZERO, ZERO)


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order placed and not yet filled or cancelled."""

    client_order_id: str
    side: Side
    sizing: SignalSizing
    size: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One request of a strategy, before sizing (see the module docstring)."""

    side: Side
    sizing: SignalSizing
    size: Decimal
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    reason: str = ""
    #: a bracket (this order + exits) or an OCO (exits only); see ``StrategyContext.oco``
    order_list: OrderListKind | None = None
    take_profit: Decimal | None = None
    stop_loss: Decimal | None = None


class Portfolio(Protocol):
    """Where a context reads the account from (the engines' ledger, or live records)."""

    def position(self, instrument: str) -> PositionView: ...
    def cash(self) -> Decimal: ...
    def equity(self) -> Decimal: ...
    def open_orders(self, instrument: str) -> tuple[OpenOrder, ...]: ...


class FlatPortfolio:
    """No positions, no orders: cash = equity = ``starting_equity``."""

    def __init__(self, starting_equity: Decimal) -> None:
        self.starting_equity = starting_equity

    def position(self, instrument: str) -> PositionView:
        return FLAT

    def cash(self) -> Decimal:
        return self.starting_equity

    def equity(self) -> Decimal:
        return self.starting_equity

    def open_orders(self, instrument: str) -> tuple[OpenOrder, ...]:
        return ()


class LedgerPortfolio:
    """The risk stage's ledger of one account (the engines); orders from ``orders``.
    With ``strategy``, that strategy's own ledger in the account (``signal.strategies``)."""

    def __init__(self, risk: RiskProcessor, account: str, strategy: str | None = None) -> None:
        self.risk = risk
        self.account = account
        self.strategy = strategy
        self.orders: dict[str, list[OpenOrder]] = {}

    def _ledger(self) -> AccountLedger:
        if self.strategy is None:
            return self.risk.ledger(self.account)
        return self.risk.book(self.account, self.strategy)

    def position(self, instrument: str) -> PositionView:
        if self.strategy is None:
            ledger = self.risk.ledgers.get(self.account)
        else:
            ledger = self.risk.books.get((self.account, self.strategy))
        pos = None if ledger is None else ledger.positions.get(instrument)
        if pos is None or not pos.quantity:
            return FLAT
        return PositionView(pos.quantity, pos.avg_price, pos.unrealized_pnl())

    def cash(self) -> Decimal:
        ledger = self._ledger()
        held = ZERO
        for pos in ledger.positions.values():
            if pos.quantity:
                mark = pos.avg_price if pos.mark_price is None else pos.mark_price
                held += pos.quantity * mark
        return ledger.equity - held

    def equity(self) -> Decimal:
        return self._ledger().equity

    def open_orders(self, instrument: str) -> tuple[OpenOrder, ...]:
        return tuple(self.orders.get(instrument, ()))


class RecordPortfolio:
    """Live: the newest ``positions`` and ``pnl`` records of one account (with
    ``strategy``: that strategy's own records; None: the account's net ones)."""

    def __init__(self, account: str, starting_equity: Decimal, strategy: str | None = None) -> None:
        self.account = account
        self.strategy = strategy
        self._equity = starting_equity
        self._positions: dict[str, Position] = {}

        self._equity_ts = -1

    def on_position(self, record: Position) -> None:
        """Keep ``record`` if it is this account's newest for its instrument."""
        held = self._positions.get(record.instrument)
        mine = record.account == self.account and record.strategy == self.strategy
        if mine and (held is None or record.ts_event >= held.ts_event):
            self._positions[record.instrument] = record

    def on_pnl(self, record: PnL) -> None:
        """Keep the equity of ``record`` if it is this account's newest."""
        mine = record.account == self.account and record.strategy == self.strategy
        if mine and record.ts_event >= self._equity_ts:
            self._equity, self._equity_ts = record.equity, record.ts_event

    def position(self, instrument: str) -> PositionView:
        rec = self._positions.get(instrument)
        if rec is None or not rec.quantity:
            return FLAT
        return PositionView(rec.quantity, rec.avg_price, rec.unrealized_pnl)

    def cash(self) -> Decimal:
        held = sum(
            (p.quantity * (p.mark_price or p.avg_price) for p in self._positions.values()), ZERO
        )
        return self._equity - held

    def equity(self) -> Decimal:
        return self._equity

    def open_orders(self, instrument: str) -> tuple[OpenOrder, ...]:
        return ()


def _positive(name: str, value: Decimal | None) -> Decimal | None:
    if value is not None and (not isinstance(value, Decimal) or not value > 0):
        raise StrategyOrderError(f"{name}={value!r}: expected a Decimal > 0")
    return value


class StrategyContext:
    """One instrument's view of the account and the clock, and its order methods."""

    __slots__ = ("filters", "instrument", "intents", "now_ns", "portfolio", "price")

    def __init__(
        self,
        instrument: str,
        portfolio: Portfolio,
        filters: InstrumentFilters | None = None,
    ) -> None:
        self.instrument = instrument
        self.portfolio = portfolio
        self.filters = filters
        self.now_ns = 0
        self.price: Decimal | None = None
        self.intents: list[OrderIntent] = []

    @property
    def position(self) -> PositionView:
        """This instrument's position (flat when none)."""
        return self.portfolio.position(self.instrument)

    @property
    def cash(self) -> Decimal:
        """Account cash: equity minus the marked value of every position."""
        return self.portfolio.cash()

    @property
    def equity(self) -> Decimal:
        """Account equity: starting equity + realised + unrealised - fees."""
        return self.portfolio.equity()

    @property
    def open_orders(self) -> tuple[OpenOrder, ...]:
        """This instrument's orders not yet filled or cancelled."""
        return self.portfolio.open_orders(self.instrument)

    # ------------------------------------------------------------------ orders
    def buy(
        self,
        units: Decimal | None = None,
        *,
        fraction: Decimal | None = None,
        limit: Decimal | None = None,
        stop: Decimal | None = None,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        reason: str = "",
    ) -> None:
        """Buy ``units``, or ``fraction`` (0, 1] of equity; at market, ``limit`` or ``stop``;
        with ``take_profit`` and ``stop_loss``, a bracket (exits placed once it fills)."""
        self._order(Side.BUY, units, fraction, limit, stop, reason, take_profit, stop_loss)

    def sell(
        self,
        units: Decimal | None = None,
        *,
        fraction: Decimal | None = None,
        limit: Decimal | None = None,
        stop: Decimal | None = None,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
        reason: str = "",
    ) -> None:
        """Sell (or sell short) ``units`` or ``fraction`` of equity (a bracket with
        ``take_profit`` and ``stop_loss``)."""
        self._order(Side.SELL, units, fraction, limit, stop, reason, take_profit, stop_loss)

    def oco(
        self,
        side: Side | None = None,
        units: Decimal | None = None,
        *,
        take_profit: Decimal,
        stop_loss: Decimal,
        reason: str = "",
    ) -> None:
        """Two reduce-only exits, one cancelling the other: a LIMIT at ``take_profit`` and
        a STOP_MARKET at ``stop_loss``, for ``units`` (default: the whole position; side
        default: the one that closes it)."""
        held = self.position.quantity
        if side is None:
            if not held:
                raise StrategyOrderError("oco: no position to exit; give side and units")
            side = Side.SELL if held > 0 else Side.BUY
        size = abs(held) if units is None else _positive("units", units)
        if not size:
            raise StrategyOrderError(f"oco: units={units!r} with no position to exit")
        tp, sl = _positive("take_profit", take_profit), _positive("stop_loss", stop_loss)
        self.intents.append(OrderIntent(side, "units", size, tp, None, reason, "OCO", tp, sl))

    def target(
        self,
        units: Decimal | None = None,
        *,
        fraction: Decimal | None = None,
        limit: Decimal | None = None,
        stop: Decimal | None = None,
        reason: str = "",
    ) -> None:
        """Trade to a signed target position: ``units``, or ``fraction`` [-1, 1] of equity."""
        if (units is None) == (fraction is None):
            raise StrategyOrderError(
                f"target: give units or fraction, got units={units!r} fraction={fraction!r}"
            )
        if fraction is not None and not -ONE <= fraction <= ONE:
            raise StrategyOrderError(f"target: fraction={fraction!r}: expected -1 to 1")
        size = units if units is not None else fraction
        assert size is not None
        if not isinstance(size, Decimal):
            raise StrategyOrderError(f"target: size {size!r} must be a Decimal")
        sizing: SignalSizing = "target_units" if units is not None else "target_equity"
        side = Side.SELL if size < 0 else Side.BUY
        self.intents.append(
            OrderIntent(
                side, sizing, size, _positive("limit", limit), _positive("stop", stop), reason
            )
        )

    def close(self, reason: str = "") -> None:
        """Flatten this instrument's position at market."""
        self.target(units=ZERO, reason=reason or "close")

    def _order(
        self,
        side: Side,
        units: Decimal | None,
        fraction: Decimal | None,
        limit: Decimal | None,
        stop: Decimal | None,
        reason: str,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> None:
        if (take_profit is None) != (stop_loss is None):
            raise StrategyOrderError(
                f"{side.value.lower()}: a bracket needs both take_profit and stop_loss, got "
                f"take_profit={take_profit!r} stop_loss={stop_loss!r}"
            )
        bracket: OrderListKind | None = "BRACKET" if take_profit is not None else None
        if (units is None) == (fraction is None):
            raise StrategyOrderError(
                f"{side.value.lower()}: give units or fraction, "
                f"got units={units!r} fraction={fraction!r}"
            )
        if fraction is not None and (
            not isinstance(fraction, Decimal) or not ZERO < fraction <= ONE
        ):
            raise StrategyOrderError(f"fraction={fraction!r}: expected a Decimal in (0, 1]")
        sizing: SignalSizing = "units" if units is not None else "equity"
        size = _positive("units", units) if units is not None else fraction
        assert size is not None
        self.intents.append(
            OrderIntent(
                side,
                sizing,
                size,
                _positive("limit", limit),
                _positive("stop", stop),
                reason,
                bracket,
                _positive("take_profit", take_profit),
                _positive("stop_loss", stop_loss),
            )
        )

    def take_intents(self) -> list[OrderIntent]:
        """The requests made since the last call (and forget them)."""
        out, self.intents = self.intents, []
        return out
