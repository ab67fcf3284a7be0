"""Paper trading of USDⓈ-M perpetuals: the paper broker's fills on a :class:`FuturesAccount`.

* Before an order goes to the :class:`~algostream.execution.paper.PaperBroker` it passes
  the account's checks (:meth:`FuturesAccount.check_order`): reduce-only that would
  increase or flip the position, leverage above the notional's bracket, initial margin
  not available, liquidation price too close. A refusal is a REJECTED event naming the
  reason, the field and the limit; the order is never changed to fit.
* Every fill moves the account: a SELL from flat opens a short.
* Funding comes from ``md.mark_price`` (:class:`~algostream.model.records.MarkPrice`):
  once a mark price is at or past the next funding time announced by the previous one,
  that funding time is settled with the rate announced with it (at most once per time),
  so live paper trading and a backtest replaying the topic pay the same funding.
* Liquidation: after every mark price the account is judged
  (:meth:`FuturesAccount.liquidations`): an isolated position the mark has crossed its
  liquidation price closes at that price; a cross account whose equity is at or below its
  maintenance margin closes every cross position at its mark. Each close is an order
  of its own (client order id ``liq-<SYMBOL>-<ms>``, strategy ``liquidation``, reduce-only
  MARKET) ACCEPTED then FILLED with the reason ``LIQUIDATED: ...`` and the liquidation
  fee (``liquidation_fee_rate`` of the notional, 0 by default) as its fee; the
  instrument's resting paper orders are cancelled, as the venue does. The risk gate
  applies the fill like any other (its ``Position`` and ``PnL`` records follow).
  :meth:`take_liquidations` hands the events over (the worker sends them to
  ``orders.events``; the backtest engine to its risk gate).

>>> from decimal import Decimal as D
>>> from algostream.execution.futures import FuturesAccount
>>> fp = FuturesPaperBroker(PaperBroker(fee_rate=D(0)), FuturesAccount(wallet=D(1000)))
>>> fp.funding_paid
Decimal('0')
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from algostream.execution.futures import FuturesAccount, FuturesError, FuturesPosition, MarginMode
from algostream.execution.orders import ManagedOrder
from algostream.execution.paper import PaperBroker
from algostream.model.enums import OrderType, Side
from algostream.model.ids import derive_id
from algostream.model.records import BookTop, MarkPrice, OrderEvent, OrderRequest, TradeTick

_ZERO = Decimal(0)


@dataclass(frozen=True)
class FundingPayment:
    """One settled funding: received (+) or paid (-) by the position at ``funding_ns``."""

    instrument: str
    funding_ns: int
    rate: Decimal
    mark: Decimal
    amount: Decimal


class FuturesPaperBroker:
    """See the module docstring. Feed it books, trades and mark prices like the broker."""

    def __init__(
        self,
        broker: PaperBroker,
        account: FuturesAccount,
        *,
        min_liquidation_distance: Decimal = Decimal("0.05"),
        liquidation_fee_rate: Decimal = _ZERO,
        account_id: str = "paper",
    ) -> None:
        self.broker = broker
        self.account = account
        self.min_liquidation_distance = min_liquidation_distance
        self.liquidation_fee_rate = liquidation_fee_rate
        self.account_id = account_id
        self._liquidations: list[OrderEvent] = []
        self.marks: dict[str, Decimal] = {}
        self._last_mark: dict[str, MarkPrice] = {}
        self.payments: list[FundingPayment] = []

    @property
    def funding_paid(self) -> Decimal:
        """Net funding so far (negative: paid)."""
        return sum((p.amount for p in self.payments), _ZERO)

    def submit(self, order: OrderRequest, now_ns: int) -> list[OrderEvent]:
        """Check the order against the account, then the paper broker; apply fills."""
        mark = self.marks.get(order.instrument) or self._mid(order.instrument)
        if mark is not None:
            try:
                self.account.check_order(
                    order.instrument,
                    order.side,
                    order.quantity,
                    mark,
                    self.marks,
                    reduce_only=order.reduce_only,
                    min_liquidation_distance=self.min_liquidation_distance,
                )
            except FuturesError as exc:
                refused = ManagedOrder(order, venue=self.broker.venue)
                return [refused.reject(str(exc), now_ns)]
        elif order.reduce_only:
            try:
                self.account.check_reduce_only(order.instrument, order.side, order.quantity)
            except FuturesError as exc:
                refused = ManagedOrder(order, venue=self.broker.venue)
                return [refused.reject(str(exc), now_ns)]
        return self._apply(self.broker.submit(order, now_ns))

    def on_book_top(self, top: BookTop) -> list[OrderEvent]:
        return self._apply(self.broker.on_book_top(top))

    def on_trade(self, trade: TradeTick) -> list[OrderEvent]:
        return self._apply(self.broker.on_trade(trade))

    def advance(self, now_ns: int) -> list[OrderEvent]:
        """The paper broker's orders due by ``now_ns`` (its latency), on the account."""
        return self._apply(self.broker.advance(now_ns))

    def on_mark_price(self, mark: MarkPrice) -> list[FundingPayment]:
        """Keep the mark; settle the funding time the previous mark announced once this
        one is at or past it."""
        inst = mark.instrument
        self.marks[inst] = mark.mark_price
        previous = self._last_mark.get(inst)
        self._last_mark[inst] = mark
        payments = self._settle_funding(mark, previous)
        self._liquidations += self.liquidate(mark.ts_event)
        return payments

    def take_liquidations(self) -> list[OrderEvent]:
        """The liquidation events since the last call (see the module docstring)."""
        out, self._liquidations = self._liquidations, []
        return out

    def liquidate(self, now_ns: int) -> list[OrderEvent]:
        """Close every position the current marks liquidate; returns the events."""
        events: list[OrderEvent] = []
        for pos, price in self.account.liquidations(self.marks):
            inst, qty = pos.instrument, abs(pos.qty)
            mark = self.marks[inst]
            for resting in self.broker.open_orders(inst):
                events += self.broker.cancel(resting.client_order_id, now_ns, "liquidation")
            side = Side.SELL if pos.qty > 0 else Side.BUY
            symbol = inst.partition(":")[2]
            coid = f"liq-{symbol}-{now_ns // 1_000_000}"[:36]
            request = OrderRequest(
                instrument=inst, ts_event=now_ns, ts_init=now_ns,
                record_id=derive_id("liquidation", inst, now_ns), lineage_id="liquidation",
                account=self.account_id, client_order_id=coid, strategy="liquidation",
                side=side, order_type=OrderType.MARKET, quantity=qty, reduce_only=True,
            )  # fmt: skip
            managed = ManagedOrder(request, venue=self.broker.venue)
            fee = qty * price * self.liquidation_fee_rate
            how = (
                f"mark {mark:f} crossed the liquidation price {price:f}"
                if pos.margin_mode is MarginMode.ISOLATED
                else f"cross equity at or below its maintenance margin at mark {mark:f}"
            )
            reason = f"LIQUIDATED: {pos.side} {qty:f} {inst} ({pos.margin_mode.value}): {how}"
            events.append(managed.accept(now_ns, f"paper-{coid}"))
            events.append(managed.fill(price, qty, fee, now_ns, reason=reason))
            self.account.fill(inst, side, qty, price, fee)
        return events

    def _settle_funding(self, mark: MarkPrice, previous: MarkPrice | None) -> list[FundingPayment]:
        inst = mark.instrument
        if previous is None or mark.ts_event < previous.next_funding_ns:
            return []
        amount = self.account.apply_funding(
            inst, mark.mark_price, previous.funding_rate, previous.next_funding_ns
        )
        if amount == 0:
            return []
        payment = FundingPayment(
            inst, previous.next_funding_ns, previous.funding_rate, mark.mark_price, amount
        )
        self.payments.append(payment)
        return [payment]

    def to_state(self) -> dict[str, Any]:
        """The account (wallet, positions, funding) and the last marks, JSON-able."""
        return {
            "wallet": str(self.account.wallet),
            "positions": [
                [
                    p.instrument,
                    p.leverage,
                    p.margin_mode.value,
                    str(p.qty),
                    str(p.entry_price),
                    str(p.isolated_margin),
                    str(p.realized_pnl),
                    str(p.fees),
                    str(p.funding),
                    sorted(p.funded_at),
                ]
                for p in self.account.positions.values()
            ],
            "marks": [m.model_dump(mode="json") for m in self._last_mark.values()],
            "funding_paid": str(self.funding_paid),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`to_state` output."""
        self.account.wallet = Decimal(state["wallet"])
        for inst, lev, mode, qty, entry, iso, real, fees, funding, funded in state["positions"]:
            self.account.positions[inst] = FuturesPosition(
                inst, int(lev), MarginMode(mode), Decimal(qty), Decimal(entry), Decimal(iso),
                Decimal(real), Decimal(fees), Decimal(funding), {int(t) for t in funded},
            )  # fmt: skip
        for item in state.get("marks", ()):
            mark = MarkPrice.model_validate(item)
            self._last_mark[mark.instrument] = mark
            self.marks[mark.instrument] = mark.mark_price
        paid = Decimal(state.get("funding_paid", "0"))
        if paid:  # the payments themselves are not kept: their sum is
            self.payments = [FundingPayment("*", 0, _ZERO, _ZERO, paid)]

    def _apply(self, events: list[OrderEvent]) -> list[OrderEvent]:
        for ev in events:
            if ev.fill_qty > 0 and ev.fill_price is not None:
                self.account.fill(ev.instrument, ev.side, ev.fill_qty, ev.fill_price, ev.fee)
        return events

    def _mid(self, instrument: str) -> Decimal | None:
        order_book = self.broker._books.get(instrument)
        if order_book is None or not order_book.bids or not order_book.asks:
            return None
        return (order_book.bids[0][0] + order_book.asks[0][0]) / 2
