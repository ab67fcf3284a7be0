"""The risk gate on USDⓈ-M perpetuals (``BINANCE_USDM:*``): leveraged notional, margin
available, distance to the liquidation price and reduce-only, and funding into P&L.

The checks are :meth:`~algostream.execution.futures.FuturesAccount.check_order` on an
account built from the gate's own ledger at decision time (no second book of positions to
keep in step): the wallet is ``starting_equity`` + realised P&L (funding included) - fees;
each futures position is the ledger's signed quantity at its average price, with the
configured ``risk.leverage`` and ``risk.margin_mode``. A refusal is an ``orders.rejected``
record whose reason is the futures one (``LEVERAGE_ABOVE_BRACKET``,
``INSUFFICIENT_MARGIN``, ``TOO_CLOSE_TO_LIQUIDATION``, ``REDUCE_ONLY_WOULD_INCREASE``)
naming the field, the value and the limit; the order is never changed to fit.

Funding: :meth:`FuturesGate.on_mark_price` takes ``md.mark_price`` records; once a mark is
at or past the funding time the previous one announced, that time is settled (once) with
the rate announced with it: ``payment = -qty * mark * rate`` (positive rate: longs pay
shorts), the same rule as :class:`~algostream.execution.futures_paper.FuturesPaperBroker`.

>>> from algostream.config import RiskConfig
>>> FuturesGate(RiskConfig()).is_futures("BINANCE_USDM:BTCUSDT")
True
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from algostream.config import RiskConfig
from algostream.execution.futures import (
    FuturesAccount,
    FuturesError,
    FuturesPosition,
    MarginMode,
)
from algostream.model.enums import Side
from algostream.model.records import MarkPrice, OrderRequest
from algostream.risk.ledger import ZERO, AccountLedger

FUTURES_VENUE = "BINANCE_USDM"
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class FuturesRefusal:
    """A futures check that refused an order (the reason and what broke it)."""

    reason: str
    limit: str
    value: str
    message: str


@dataclass(frozen=True, slots=True)
class Funding:
    """One funding time settled on one account's position (+ received, - paid)."""

    account: str
    instrument: str
    funding_ns: int
    rate: Decimal
    mark: Decimal
    amount: Decimal


class FuturesGate:
    """See the module docstring."""

    def __init__(self, config: RiskConfig) -> None:
        self.leverage = config.leverage
        self.mode = MarginMode(config.margin_mode)
        self.min_distance = config.min_liquidation_distance_percent / _HUNDRED
        #: instrument -> the newest mark price record (its rate and next funding time)
        self.last_mark: dict[str, MarkPrice] = {}
        #: instrument -> the last funding time settled (funding times only move on)
        self.settled: dict[str, int] = {}

    @staticmethod
    def is_futures(instrument: str) -> bool:
        return instrument.startswith(FUTURES_VENUE + ":")

    def account(self, ledger: AccountLedger | None, starting: Decimal) -> FuturesAccount:
        """The futures account the ledger describes (see the module docstring)."""
        if ledger is None:
            return FuturesAccount(wallet=starting)
        acct = FuturesAccount(wallet=ledger.starting_equity + ledger.realized_pnl - ledger.fees)
        for inst, pos in ledger.positions.items():
            if not self.is_futures(inst):
                continue
            qty, entry = pos.quantity, pos.avg_price if pos.quantity else ZERO
            isolated = (
                abs(qty) * entry / self.leverage if self.mode is MarginMode.ISOLATED else ZERO
            )
            acct.positions[inst] = FuturesPosition(
                inst, self.leverage, self.mode, qty, entry, isolated
            )
        return acct

    def margin_used(self, ledger: AccountLedger) -> Decimal:
        """Initial margin of the ledger's futures positions at their marks."""
        total = ZERO
        for inst, pos in ledger.positions.items():
            if self.is_futures(inst) and pos.quantity:
                mark = pos.avg_price if pos.mark_price is None else pos.mark_price
                total += abs(pos.quantity) * mark / self.leverage
        return total

    def check(
        self,
        order: OrderRequest,
        ledger: AccountLedger | None,
        starting: Decimal,
        mark: Decimal,
        pending: Decimal = ZERO,
    ) -> FuturesRefusal | None:
        """The futures checks on an order the other checks approved (None: it passes).
        ``pending``: the signed quantity of approved orders not yet filled in the
        instrument, counted as filled at the mark (their margin is spoken for)."""
        acct = self.account(ledger, starting)
        acct.position(order.instrument).leverage = self.leverage
        acct.positions[order.instrument].margin_mode = self.mode
        if pending:
            side = Side.BUY if pending > 0 else Side.SELL
            acct.fill(order.instrument, side, abs(pending), mark)
        marks = {order.instrument: mark}
        if ledger is not None:
            for inst, pos in ledger.positions.items():
                if self.is_futures(inst) and pos.mark_price is not None:
                    marks.setdefault(inst, pos.mark_price)
        try:
            acct.check_order(
                order.instrument,
                order.side,
                order.quantity,
                mark,
                marks,
                reduce_only=order.reduce_only,
                min_liquidation_distance=self.min_distance,
            )
        except FuturesError as exc:
            return FuturesRefusal(exc.reason, f"{exc.field}={exc.limit}", exc.value, str(exc))
        return None

    def on_mark_price(self, mark: MarkPrice, ledgers: list[AccountLedger]) -> list[Funding]:
        """Keep the mark; settle the funding time the previous mark announced on every
        ledger's position once this mark is at or past it (each time once)."""
        inst = mark.instrument
        previous = self.last_mark.get(inst)
        self.last_mark[inst] = mark
        if previous is None or mark.ts_event < previous.next_funding_ns:
            return []
        if self.settled.get(inst, -1) >= previous.next_funding_ns:
            return []
        self.settled[inst] = previous.next_funding_ns
        out = []
        for ledger in ledgers:
            pos = ledger.positions.get(inst)
            if pos is None or not pos.quantity:
                continue
            amount = -pos.quantity * mark.mark_price * previous.funding_rate
            pos.apply_funding(amount)
            out.append(
                Funding(
                    ledger.account,
                    inst,
                    previous.next_funding_ns,
                    previous.funding_rate,
                    mark.mark_price,
                    amount,
                )
            )
        return out

    def to_state(self) -> dict[str, Any]:
        return {
            "marks": [m.model_dump(mode="json") for m in self.last_mark.values()],
            "settled": dict(self.settled),
        }

    def restore(self, state: dict[str, Any]) -> None:
        for item in state.get("marks", ()):
            m = MarkPrice.model_validate(item)
            self.last_mark[m.instrument] = m
        self.settled = {str(i): int(t) for i, t in state.get("settled", {}).items()}
