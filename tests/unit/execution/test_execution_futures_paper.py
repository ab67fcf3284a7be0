"""Paper trading a perpetual: shorts from flat, reduce-only and margin refusals as
REJECTED events naming the reason, funding settled from ``md.mark_price`` records."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from execution_helpers import levels, make_top

from algostream.execution.futures import FuturesAccount
from algostream.execution.futures_paper import FuturesPaperBroker
from algostream.execution.paper import PaperBroker
from algostream.model import MarkPrice, OrderRequest, OrderType, Side

PERP = "BINANCE_USDM:BTCUSDT"
HOUR = 3_600_000_000_000


def order(coid: str, side: Side, qty: str, **kw: Any) -> OrderRequest:
    return OrderRequest(
        instrument=PERP, ts_event=1, ts_init=1, record_id=f"a-{coid}", lineage_id="p",
        account="paper", client_order_id=coid, strategy="s", side=side,
        order_type=OrderType.MARKET, quantity=qty, **kw,
    )  # fmt: skip


def mark(ts: int, next_funding: int, rate: str, price: str = "30000") -> MarkPrice:
    return MarkPrice(instrument=PERP, ts_event=ts, ts_init=ts, record_id=f"m{ts}",
                     lineage_id="r", mark_price=price, index_price=price, funding_rate=rate,
                     next_funding_ns=next_funding)  # fmt: skip


def broker(wallet: str = "10000", leverage: int = 10) -> FuturesPaperBroker:
    fp = FuturesPaperBroker(PaperBroker(fee_rate=D("0")), FuturesAccount(wallet=D(wallet)))
    fp.account.position(PERP, leverage=leverage)
    top = make_top(levels(("29999.5", "5")), levels(("30000.5", "5")), 1, instrument=PERP)
    fp.on_book_top(top)
    return fp


def test_a_sell_from_flat_opens_a_short() -> None:
    fp = broker()
    events = fp.submit(order("s1", Side.SELL, "0.1"), 2)
    assert [e.status.value for e in events] == ["ACCEPTED", "FILLED"]
    pos = fp.account.positions[PERP]
    assert pos.side == "SHORT" and pos.qty == D("-0.1") and pos.entry_price == D("29999.5")


def test_reduce_only_that_would_increase_is_rejected_naming_it() -> None:
    fp = broker()
    fp.submit(order("s1", Side.SELL, "0.1"), 2)
    (ev,) = fp.submit(order("r1", Side.BUY, "0.2", reduce_only=True), 3)
    assert ev.status.value == "REJECTED" and "REDUCE_ONLY_WOULD_INCREASE" in ev.reason
    assert fp.account.positions[PERP].qty == D("-0.1")
    events = fp.submit(order("r2", Side.BUY, "0.1", reduce_only=True), 4)
    assert events[-1].status.value == "FILLED" and fp.account.positions[PERP].qty == 0


def test_leverage_and_margin_refusals_are_rejected_events() -> None:
    fp = broker(wallet="100")
    (ev,) = fp.submit(order("m1", Side.BUY, "1"), 2)
    assert ev.status.value == "REJECTED" and "INSUFFICIENT_MARGIN" in ev.reason
    fp = broker(wallet="1000000", leverage=125)
    (ev,) = fp.submit(order("m2", Side.BUY, "3"), 2)
    assert "LEVERAGE_ABOVE_BRACKET" in ev.reason and "leverage=125" in ev.reason


def test_funding_is_settled_once_from_mark_price_records() -> None:
    fp = broker()
    fp.submit(order("s1", Side.SELL, "0.1"), 2)
    t0 = 1_700_000_000_000_000_000
    assert fp.on_mark_price(mark(t0, t0 + HOUR, "0.0001")) == []
    assert fp.on_mark_price(mark(t0 + HOUR // 2, t0 + HOUR, "0.0002")) == []
    (paid,) = fp.on_mark_price(mark(t0 + HOUR, t0 + 9 * HOUR, "0.0001"))
    assert paid.rate == D("0.0002") and paid.amount == D("0.6")  # a short receives
    assert fp.on_mark_price(mark(t0 + HOUR + 1, t0 + 9 * HOUR, "0.0001")) == []
    assert fp.funding_paid == D("0.6") and fp.account.wallet == D("10000.6")
