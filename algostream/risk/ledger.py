"""Positions and P&L: lot ledgers with FIFO, LIFO and weighted-average cost, exact Decimal.

A :class:`PositionLedger` holds the open lots of one account in one instrument. Fills are
applied with :meth:`PositionLedger.apply_fill`; a fill against the position closes lots
(realising P&L per closed lot) and any remainder opens a new lot at the fill price, so a
long-to-short flip closes the whole position first. Fees are accumulated separately and
never mixed into realised P&L. An :class:`AccountLedger` holds the ledgers of one account
and derives equity, peak equity, drawdown and exposure.

Equity is kept, not summed on each look: realised P&L, fees and funding change only on
fills and funding, and are summed then; a mark changes only the marked position's
unrealised P&L (kept per position), and only a mark that moves it sums the account's
unrealised P&L and equity again over the kept terms (a mark of the same value, most book
tops, changes nothing). The kept values are the full sums, value and exponent, so every
``PnL`` record and every breaker decision is the same as summing on every look.

Exactness: FIFO and LIFO are exact (sums and products of Decimals). The weighted average
price of the AVERAGE method (and the displayed ``avg_price`` of FIFO/LIFO) is a division;
it is computed in a fixed 34-digit context so the result is the same on every machine.

>>> from decimal import Decimal as D
>>> led = PositionLedger("paper", "BINANCE:BTCUSDT", CostMethod.FIFO)
>>> _ = led.apply_fill(Side.BUY, D("2"), D("100"), D("0.2"))
>>> led.apply_fill(Side.SELL, D("1"), D("110"), D("0.1")).realized_pnl
Decimal('10')
>>> led.quantity, led.fees
(Decimal('1'), Decimal('0.3'))
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Any, TypeVar

from algostream.model.enums import CostMethod, Side
from algostream.model.ids import derive_id
from algostream.model.records import PnL, Position
from algostream.risk.errors import InvalidFillError, StateRestoreError

ZERO = Decimal(0)
_HUNDRED = Decimal(100)
#: Context of the only inexact step (a weighted-average division): fixed, not ambient.
AVG_CONTEXT = Context(prec=34, rounding=ROUND_HALF_EVEN)


@dataclass(slots=True)
class Lot:
    """An open lot: ``quantity`` (a magnitude, > 0) bought or sold at ``price``."""

    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class FillResult:
    """What one fill did to a position."""

    realized_pnl: Decimal
    closed_quantity: Decimal
    opened_quantity: Decimal
    previous_quantity: Decimal
    quantity: Decimal

    @property
    def flipped(self) -> bool:
        """True when the fill took the position through zero to the other side."""
        return self.previous_quantity * self.quantity < 0


def _dec(state: dict[str, Any], key: str) -> Decimal:
    raw = state.get(key)
    try:
        return Decimal(str(raw))
    except (InvalidOperation, ValueError):
        raise StateRestoreError(f"ledger state key '{key}' = {raw!r}: not a decimal") from None


class PositionLedger:
    """The open lots and P&L of one account in one instrument."""

    def __init__(self, account: str, instrument: str, cost_method: CostMethod) -> None:
        self.account = account
        self.instrument = instrument
        self.cost_method = cost_method
        self.quantity = ZERO
        self.realized_pnl = ZERO
        self.fees = ZERO
        #: futures funding received (+) / paid (-), included in ``realized_pnl``
        self.funding = ZERO
        self.mark_price: Decimal | None = None
        self._lots: deque[Lot] = deque()
        #: unrealised P&L at ``mark_price``: kept on every mark and fill (every book top
        #: asks for it several times: marks, stops, breaker, records)
        self._upnl = ZERO
        #: ``avg_price`` of two or more lots (None: to work out after a fill)
        self._avg: Decimal | None = None
        #: the account ledger told of every change (its totals are kept, not summed)
        self._owner: AccountLedger | None = None

    @property
    def lots(self) -> tuple[Lot, ...]:
        """A copy of the open lots, oldest first."""
        return tuple(Lot(lot.quantity, lot.price) for lot in self._lots)

    @property
    def avg_price(self) -> Decimal:
        """Weighted average price of the open lots (0 when flat)."""
        if not self._lots:
            return ZERO
        if len(self._lots) == 1:
            return self._lots[0].price
        avg = self._avg
        if avg is None:  # (asked on every top by the stops: kept until the next fill)
            cost = sum((lot.quantity * lot.price for lot in self._lots), ZERO)
            avg = self._avg = AVG_CONTEXT.divide(cost, abs(self.quantity))
        return avg

    def unrealized_pnl(self, mark: Decimal | None = None) -> Decimal:
        """P&L of the open lots at ``mark`` (default: the last mark; 0 without one)."""
        if mark is None:
            return self._upnl
        return self._unrealized_at(mark)

    def _unrealized_at(self, price: Decimal | None) -> Decimal:
        lots = self._lots
        if price is None or not lots:
            return ZERO
        sign = 1 if self.quantity > 0 else -1
        if len(lots) == 1:  # sum() of one term, without the generator
            lot = lots[0]
            return sign * (ZERO + lot.quantity * (price - lot.price))
        return sign * sum((lot.quantity * (price - lot.price) for lot in lots), ZERO)

    def set_mark(self, price: Decimal) -> None:
        """Mark the position to ``price`` (the book mid)."""
        last, self.mark_price = self.mark_price, price
        if last is not None and price == last and price.same_quantum(last):
            return  # the same mark (most book updates leave the mid): the same P&L, digits
        old, self._upnl = self._upnl, self._unrealized_at(price)
        if self._owner is not None:
            self._owner._unrealized_moved(old, self._upnl)

    def apply_funding(self, amount: Decimal) -> None:
        """A futures funding payment (received > 0, paid < 0): realised P&L."""
        self.realized_pnl += amount
        self.funding += amount
        if self._owner is not None:
            self._owner._resum()

    def apply_fill(
        self, side: Side, quantity: Decimal, price: Decimal, fee: Decimal = ZERO
    ) -> FillResult:
        """Apply one (possibly partial) fill; returns the P&L it realised."""
        if not quantity.is_finite() or quantity <= 0:
            raise InvalidFillError(f"fill quantity = {quantity}: must be > 0")
        if not price.is_finite() or price <= 0:
            raise InvalidFillError(f"fill price = {price}: must be > 0")
        if not fee.is_finite():
            raise InvalidFillError(f"fill fee = {fee}: must be finite")
        previous = self.quantity
        closing = ZERO
        if previous != 0 and (previous > 0) != (side is Side.BUY):
            closing = min(quantity, abs(previous))
        realized = self._close(closing, price) if closing else ZERO
        opening = quantity - closing
        if opening:
            self._open(opening, price)
        self.quantity = previous + side.sign * quantity
        self.realized_pnl += realized
        self.fees += fee
        self._avg = None
        self._upnl = self._unrealized_at(self.mark_price)
        if self._owner is not None:
            self._owner._resum()
        return FillResult(realized, closing, opening, previous, self.quantity)

    def _open(self, quantity: Decimal, price: Decimal) -> None:
        if self.cost_method is CostMethod.AVERAGE and self._lots:
            lot = self._lots[0]
            total = lot.quantity + quantity
            cost = lot.quantity * lot.price + quantity * price
            lot.price = AVG_CONTEXT.divide(cost, total)
            lot.quantity = total
            return
        self._lots.append(Lot(quantity, price))

    def _close(self, quantity: Decimal, price: Decimal) -> Decimal:
        """Close ``quantity`` against lots in cost-method order; returns realised P&L."""
        sign = 1 if self.quantity > 0 else -1
        take_last = self.cost_method is CostMethod.LIFO
        realized = ZERO
        remaining = quantity
        while remaining:
            lot = self._lots[-1] if take_last else self._lots[0]
            used = min(remaining, lot.quantity)
            realized += sign * used * (price - lot.price)
            lot.quantity -= used
            remaining -= used
            if not lot.quantity and take_last:
                self._lots.pop()
            elif not lot.quantity:
                self._lots.popleft()
        return realized

    def to_record(self, *, ts_event: int, ts_init: int, cause_id: str) -> Position:
        """The ``Position`` record of this ledger, caused by record ``cause_id``.

        Built from the ledger's values as they are (see :func:`_built`: what validating
        them would make, without the 15 µs of it on every mark's record)."""
        return _built(
            Position,
            {
                "instrument": self.instrument,
                "ts_event": ts_event,
                "ts_init": ts_init,
                "record_id": derive_id("position", self.account, self.instrument, cause_id),
                "lineage_id": cause_id,
                "account": self.account,
                "quantity": self.quantity,
                "avg_price": self.avg_price,
                "cost_method": self.cost_method,
                "realized_pnl": self.realized_pnl,
                "unrealized_pnl": self._upnl,
                "fees": self.fees,
                "mark_price": self.mark_price,
                "strategy": None,
            },
            _POSITION_SET,
        )

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot (decimal strings) that :meth:`from_state` restores exactly."""
        return {
            "account": self.account,
            "instrument": self.instrument,
            "cost_method": self.cost_method.value,
            "quantity": str(self.quantity),
            "lots": [[str(lot.quantity), str(lot.price)] for lot in self._lots],
            "realized_pnl": str(self.realized_pnl),
            "fees": str(self.fees),
            "mark_price": None if self.mark_price is None else str(self.mark_price),
        } | self._funding_state()

    def _funding_state(self) -> dict[str, str]:
        """``funding`` unless it is the untouched zero (a spot position's state has no
        such key); a zero with an exponent (``0.000``, funding paid and received back) is
        kept, or the restored ledger's next funding would be written with another one."""
        funding = str(self.funding)
        return {} if funding == "0" else {"funding": funding}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> PositionLedger:
        """Restore a ledger from :meth:`to_state` output."""
        try:
            ledger = cls(state["account"], state["instrument"], CostMethod(state["cost_method"]))
            lots = [Lot(Decimal(q), Decimal(p)) for q, p in state["lots"]]
        except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
            raise StateRestoreError(f"position ledger state {state!r}: {exc!r}") from None
        ledger._lots.extend(lots)
        ledger.quantity = _dec(state, "quantity")
        ledger.realized_pnl = _dec(state, "realized_pnl")
        ledger.fees = _dec(state, "fees")
        ledger.funding = _dec(state, "funding") if "funding" in state else ZERO
        mark = state.get("mark_price")
        ledger.mark_price = None if mark is None else _dec(state, "mark_price")
        ledger._upnl = ledger._unrealized_at(ledger.mark_price)
        if sum((lot.quantity for lot in lots), ZERO) != abs(ledger.quantity):
            raise StateRestoreError(
                f"position ledger state 'quantity' = {state['quantity']!r} "
                f"does not match the sum of its lots"
            )
        return ledger


class AccountLedger:
    """All position ledgers of one account, with equity, peak equity and drawdown.

    ``equity = starting_equity + realised + unrealised - fees``; the peak is updated after
    every fill and mark, so ``drawdown = peak_equity - equity`` is never negative.

    The totals are kept (see the module docstring): a position joins through
    :meth:`position` (or :meth:`from_state`) and tells this ledger of every fill, funding
    and mark. ``realized_pnl``, ``unrealized_pnl``, ``fees`` and ``equity`` equal the sums
    over the positions, value and exponent (:meth:`summed`); ``unrealized_value`` and
    ``equity_value`` are the same values (the loss breaker and the peak read them).
    """

    def __init__(self, account: str, cost_method: CostMethod, starting_equity: Decimal) -> None:
        self.account = account
        self.cost_method = cost_method
        self.starting_equity = starting_equity
        self.peak_equity = starting_equity
        self.positions: dict[str, PositionLedger] = {}
        self._realized = ZERO
        self._fees = ZERO
        self._funding = ZERO
        #: the values of unrealised P&L and equity, summed on each change
        self.unrealized_value = ZERO
        self.equity_value = starting_equity
        #: the same as the full sums give them (None: not asked for since the last mark)
        self._u: Decimal | None = ZERO
        self._eq: Decimal | None = starting_equity
        #: counts the changes of equity (marks that move it, fills, funding): a check made
        #: on equity and peak can be known unchanged (the loss breaker's, on every top)
        self.version = 0

    @property
    def pnl_instrument(self) -> str:
        """Instrument id of this account's ``PnL`` records (``ACCOUNT:<ACCOUNT>``)."""
        return f"ACCOUNT:{self.account.upper()}"

    def position(self, instrument: str) -> PositionLedger:
        """The ledger of ``instrument`` (created flat on first use)."""
        ledger = self.positions.get(instrument)
        if ledger is None:
            ledger = PositionLedger(self.account, instrument, self.cost_method)
            self._adopt(ledger)
        return ledger

    def _adopt(self, ledger: PositionLedger) -> None:
        ledger._owner = self
        self.positions[ledger.instrument] = ledger
        self._resum()

    def quantity(self, instrument: str) -> Decimal:
        """Signed position in ``instrument`` (0 when unknown)."""
        ledger = self.positions.get(instrument)
        return ZERO if ledger is None else ledger.quantity

    def apply_fill(
        self, instrument: str, side: Side, quantity: Decimal, price: Decimal, fee: Decimal
    ) -> FillResult:
        """Apply a fill to ``instrument``'s ledger and update the peak equity."""
        result = self.position(instrument).apply_fill(side, quantity, price, fee)
        self._update_peak()
        return result

    def set_mark(self, instrument: str, price: Decimal) -> None:
        """Mark ``instrument`` to ``price`` and update the peak equity."""
        pos = self.positions.get(instrument)
        (self.position(instrument) if pos is None else pos).set_mark(price)
        self._update_peak()

    def _update_peak(self) -> None:
        if self.equity_value > self.peak_equity:
            self.peak_equity = self.equity  # as the full sums give it (records, state)

    # ------------------------------------------------------------------ kept totals

    def _resum(self) -> None:
        """A fill, funding or a new position: every total summed afresh (rare)."""
        self.version += 1
        positions = self.positions.values()
        self._realized = sum((p.realized_pnl for p in positions), ZERO)
        self._fees = sum((p.fees for p in positions), ZERO)
        self._funding = sum((p.funding for p in positions), ZERO)
        self._u = None
        self._eq = None
        self.unrealized_value = self.unrealized_pnl
        self.equity_value = self.equity

    def _unrealized_moved(self, old: Decimal, new: Decimal) -> None:
        """One position's unrealised P&L went from ``old`` to ``new`` (a mark that moved
        it): unrealised P&L and equity summed again over the positions' kept terms, as
        the full sums give them, value and exponent (the sums round to the context's 28
        digits where a kept difference would not: an AVERAGE lot's 34-digit price makes
        such terms; those values decide the breaker, so they are the sums'). A few
        Decimal additions on a mark that moved (most tops do not move it: skipped)."""
        self.version += 1
        unrealized = ZERO
        for p in self.positions.values():  # sum(), without the generator: the same additions
            unrealized = unrealized + p._upnl
        self._u = self.unrealized_value = unrealized
        self._eq = self.equity_value = (
            self.starting_equity + self._realized + unrealized - self._fees
        )

    @property
    def realized_pnl(self) -> Decimal:
        return self._realized

    @property
    def unrealized_pnl(self) -> Decimal:
        unrealized = self._u
        if unrealized is None:
            # the exponent of a sum is its terms' smallest: summed once per record or
            # new peak (each position's term is kept), not on every mark
            unrealized = self._u = sum((p._upnl for p in self.positions.values()), ZERO)
            self.unrealized_value = unrealized  # the kept value, its exponent reset
        return unrealized

    @property
    def fees(self) -> Decimal:
        return self._fees

    @property
    def funding(self) -> Decimal:
        """Futures funding received (+) / paid (-), part of ``realized_pnl``."""
        return self._funding

    @property
    def equity(self) -> Decimal:
        equity = self._eq
        if equity is None:
            equity = self._eq = (
                self.starting_equity + self._realized + self.unrealized_pnl - self._fees
            )
            self.equity_value = equity
        return equity

    def summed(self) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(realised, unrealised, fees, equity) summed over the positions afresh: what the
        kept totals equal, value and exponent (for tests and checks, not the hot path)."""
        positions = self.positions.values()
        realized = sum((p.realized_pnl for p in positions), ZERO)
        unrealized = sum((p.unrealized_pnl() for p in positions), ZERO)
        fees = sum((p.fees for p in positions), ZERO)
        return realized, unrealized, fees, self.starting_equity + realized + unrealized - fees

    @property
    def drawdown(self) -> Decimal:
        """Peak equity minus equity (an amount, >= 0)."""
        return max(self.peak_equity - self.equity, ZERO)

    @property
    def drawdown_percent(self) -> Decimal:
        """Drawdown as a percentage of the peak equity (0 when the peak is not positive)."""
        peak = self.peak_equity
        return AVG_CONTEXT.divide(self.drawdown * _HUNDRED, peak) if peak > 0 else ZERO

    @property
    def exposure(self) -> Decimal:
        """Sum of ``|quantity| * mark`` (the average price where there is no mark yet)."""
        total = ZERO
        for pos in self.positions.values():
            if pos.quantity:
                mark = pos.avg_price if pos.mark_price is None else pos.mark_price
                total += abs(pos.quantity) * mark
        return total

    def open_positions(self) -> list[PositionLedger]:
        """Ledgers with a non-zero position, in insertion order."""
        return [p for p in self.positions.values() if p.quantity]

    def pnl_record(self, *, ts_event: int, ts_init: int, cause_id: str) -> PnL:
        """The account's ``PnL`` record, caused by record ``cause_id`` (built as
        :meth:`PositionLedger.to_record` builds its record)."""
        return _built(
            PnL,
            {
                "instrument": self.pnl_instrument,
                "ts_event": ts_event,
                "ts_init": ts_init,
                "record_id": derive_id("pnl", self.account, cause_id),
                "lineage_id": cause_id,
                "account": self.account,
                "realized_pnl": self.realized_pnl,
                "unrealized_pnl": self.unrealized_pnl,
                "fees": self.fees,
                "equity": self.equity,
                "peak_equity": self.peak_equity,
                "drawdown": self.drawdown,
                "exposure": self.exposure,
                "strategy": None,
            },
            _PNL_SET,
        )

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot (decimal strings) that :meth:`from_state` restores exactly."""
        return {
            "account": self.account,
            "cost_method": self.cost_method.value,
            "starting_equity": str(self.starting_equity),
            "peak_equity": str(self.peak_equity),
            "positions": [p.to_state() for p in self.positions.values()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AccountLedger:
        """Restore an account ledger from :meth:`to_state` output."""
        try:
            ledger = cls(
                state["account"], CostMethod(state["cost_method"]), _dec(state, "starting_equity")
            )
            positions = state["positions"]
        except (KeyError, ValueError) as exc:
            raise StateRestoreError(f"account ledger state: missing or bad {exc}") from None
        ledger.peak_equity = _dec(state, "peak_equity")
        for pos_state in positions:
            ledger._adopt(PositionLedger.from_state(pos_state))
        return ledger


_R = TypeVar("_R", Position, PnL)
#: the fields a validated record was given (its ``model_fields_set``): all but strategy
_POSITION_SET = frozenset(Position.model_fields) - {"strategy"}
_PNL_SET = frozenset(PnL.model_fields) - {"strategy"}


def _built(cls: type[_R], values: dict[str, Any], given: frozenset[str]) -> _R:
    """``cls(**values)`` without validating ``values``: every field, in declared order
    (``Record.encode`` writes ``__dict__`` in its order), each already of its type. The
    ledger's values are: its account and instrument came validated with the fills and
    tops, its amounts are finite Decimals (validated fills and marks, exact arithmetic),
    ids from ``derive_id``. The same record, field for field and in its encoding, as the
    validated one (``tests/unit/risk/test_risk_ledger_kept.py``)."""
    record = cls.__new__(cls)
    _setattr(record, "__dict__", values)
    _setattr(record, "__pydantic_fields_set__", set(given))
    _setattr(record, "__pydantic_extra__", None)
    _setattr(record, "__pydantic_private__", None)
    return record


_setattr = object.__setattr__
