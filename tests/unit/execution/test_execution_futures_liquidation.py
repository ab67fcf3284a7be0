"""The paper futures account liquidates: the numbers are worked out by hand in the
comments, with one leverage bracket (maintenance rate 1 %, no maintenance amount) so the
liquidation prices come out round:

    isolated long : P = (q * entry - margin) / (q - |q| * mmr)   (margin = |q| * entry / lev)
    cross account : liquidated when wallet + sum(uPnL) <= sum(|q| * mark * mmr)
"""

from __future__ import annotations

from decimal import Decimal as D

from execution_helpers import levels, make_top

from algostream.execution.futures import FuturesAccount, LeverageBracket, MarginMode
from algostream.execution.futures_paper import FuturesPaperBroker
from algostream.execution.paper import PaperBroker
from algostream.model import MarkPrice, OrderStatus, OrderType, Side

BTC = "BINANCE_USDM:BTCUSDT"
ETH = "BINANCE_USDM:ETHUSDT"
ONE_BRACKET = (LeverageBracket(D("1000000000"), 125, D("0.01"), D(0)),)


def mark(inst: str, price: str, ts: int) -> MarkPrice:
    return MarkPrice(
        instrument=inst, ts_event=ts, ts_init=ts, record_id=f"m-{inst}-{ts}", lineage_id="r",
        mark_price=price, index_price=price, funding_rate="0", next_funding_ns=10**18,
    )  # fmt: skip


def paper(wallet: str, mode: MarginMode, fee_rate: str = "0") -> FuturesPaperBroker:
    account = FuturesAccount(wallet=D(wallet), brackets=ONE_BRACKET)
    for inst in (BTC, ETH):
        account.position(inst, leverage=10, mode=mode)
    return FuturesPaperBroker(
        PaperBroker(fee_rate=D(0)), account, liquidation_fee_rate=D(fee_rate), account_id="acct"
    )


def test_an_isolated_long_is_liquidated_at_its_liquidation_price_with_the_fee() -> None:
    fp = paper("1000", MarginMode.ISOLATED, fee_rate="0.005")
    fp.account.fill(BTC, Side.BUY, D(1), D(110))
    pos = fp.account.positions[BTC]
    # margin = 1 * 110 / 10 = 11; P = (110 - 11) / (1 - 0.01) = 99 / 0.99 = 100
    assert pos.isolated_margin == D(11)
    assert fp.account.liquidation_price(pos, D(105)) == D(100)
    fp.on_mark_price(mark(BTC, "100.01", 1_000_000))  # above 100: nothing happens
    assert fp.take_liquidations() == [] and pos.qty == 1
    fp.on_mark_price(mark(BTC, "99.5", 2_000_000))  # through it: closed at 100, not 99.5
    accepted, filled = fp.take_liquidations()
    assert accepted.status is OrderStatus.ACCEPTED
    assert (filled.status, filled.side, filled.fill_qty, filled.fill_price) == (
        OrderStatus.FILLED, Side.SELL, D(1), D(100),
    )  # fmt: skip
    # fee = 1 * 100 * 0.005 = 0.5
    assert filled.fee == D("0.5") and filled.order_type is OrderType.MARKET
    assert filled.reason.startswith("LIQUIDATED: LONG 1 BINANCE_USDM:BTCUSDT (ISOLATED)")
    assert "mark 99.5 crossed the liquidation price 100" in filled.reason
    assert (filled.client_order_id, filled.account, filled.strategy) == (
        "liq-BTCUSDT-2", "acct", "liquidation",
    )  # fmt: skip
    # realised = 1 * (100 - 110) = -10; wallet = 1000 - 10 - 0.5 = 989.5
    assert pos.qty == 0 and pos.realized_pnl == D(-10) and fp.account.wallet == D("989.5")
    assert pos.isolated_margin == 0
    fp.on_mark_price(mark(BTC, "90", 3_000_000))
    assert fp.take_liquidations() == []  # flat: nothing more


def test_an_isolated_short_is_liquidated_when_the_mark_rises_through_it() -> None:
    fp = paper("1000", MarginMode.ISOLATED)
    fp.account.fill(BTC, Side.SELL, D(1), D(101))
    pos = fp.account.positions[BTC]
    # margin = 101 / 10 = 10.1; P = (-101 - 10.1) / (-1 - 0.01) = 111.1 / 1.01 = 110
    assert fp.account.liquidation_price(pos, D(101)) == D(110)
    # at 110: margin + uPnL = 10.1 - 9 = 1.1 = maintenance 110 * 0.01: liquidated (at or above)
    fp.on_mark_price(mark(BTC, "110", 1_000_000))
    _, filled = fp.take_liquidations()
    assert (filled.side, filled.fill_price, filled.fee) == (Side.BUY, D(110), D(0))
    # realised = -1 * (110 - 101) = -9: the margin 10.1 less the maintenance 1.1
    assert pos.qty == 0 and fp.account.wallet == D(991)


def test_a_cross_account_is_liquidated_on_its_equity_every_position_at_its_mark() -> None:
    fp = paper("110", MarginMode.CROSS, fee_rate="0.005")
    fp.account.fill(BTC, Side.BUY, D(10), D(110))
    fp.account.fill(ETH, Side.BUY, D(1), D("59.4"))
    btc = fp.account.positions[BTC]
    # BTC alone on the wallet: P = (1100 - 110) / (10 * 0.99) = 990 / 9.9 = 100
    assert fp.account.liquidation_price(btc, D(110)) == D(100)
    fp.on_mark_price(mark(ETH, "50", 1_000_000))
    # ETH at 50: uPnL -9.4, maintenance 0.5, so BTC's margin is 110 - 9.9 = 100.1 and
    # P = (1100 - 100.1) / 9.9 = 999.9 / 9.9 = 101: the account's equity counts
    assert fp.account.liquidation_price(btc, D(110), fp.marks) == D(101)
    assert fp.take_liquidations() == []  # BTC at its entry: equity 100.6 > maintenance 11.5
    # BTC 101.5: equity 110 - 85 - 9.4 = 15.6 > maintenance 10.15 + 0.5 = 10.65
    fp.on_mark_price(mark(BTC, "101.5", 2_000_000))
    assert fp.take_liquidations() == []
    # BTC 101: equity 110 - 90 - 9.4 = 10.6 <= maintenance 10.1 + 0.5 = 10.6: liquidated
    fp.on_mark_price(mark(BTC, "101", 3_000_000))
    events = fp.take_liquidations()
    fills = [(e.instrument, e.side, e.fill_qty, e.fill_price, e.fee) for e in events if e.fill_qty]
    # fees 0.005 * 1010 = 5.05 and 0.005 * 50 = 0.25
    assert fills == [
        (BTC, Side.SELL, D(10), D(101), D("5.05")),
        (ETH, Side.SELL, D(1), D(50), D("0.25")),
    ]
    assert all("(CROSS): cross equity at or below" in e.reason for e in events if e.fill_qty)
    # wallet = 110 - 90 - 9.4 - 5.05 - 0.25 = 5.3
    assert fp.account.wallet == D("5.3")
    assert btc.qty == 0 and fp.account.positions[ETH].qty == 0


def test_a_liquidation_cancels_the_instruments_resting_orders() -> None:
    from execution_helpers import make_request

    fp = paper("1000", MarginMode.ISOLATED)
    fp.account.fill(BTC, Side.BUY, D(1), D(110))
    fp.on_book_top(make_top(levels(("104", "1")), levels(("106", "1")), 1, instrument=BTC))
    resting = make_request("tp-1", side=Side.SELL, qty="1", order_type=OrderType.LIMIT,
                           limit="120", instrument=BTC)  # fmt: skip
    fp.broker.submit(resting, 1)
    assert [o.client_order_id for o in fp.broker.open_orders(BTC)] == ["tp-1"]
    fp.on_mark_price(mark(BTC, "99", 5_000_000))
    events = fp.take_liquidations()
    assert events[0].client_order_id == "tp-1" and events[0].status is OrderStatus.CANCELLED
    assert events[-1].reason.startswith("LIQUIDATED") and fp.broker.open_orders(BTC) == []


def test_the_liquidation_survives_in_the_saved_state() -> None:
    fp = paper("1000", MarginMode.ISOLATED)
    fp.account.fill(BTC, Side.BUY, D(1), D(110))
    fp.on_mark_price(mark(BTC, "99", 1_000_000))
    fp.take_liquidations()
    again = paper("0", MarginMode.ISOLATED)
    again.load_state(fp.to_state())
    assert again.account.wallet == D(990) and again.account.positions[BTC].qty == 0
    again.on_mark_price(mark(BTC, "98", 2_000_000))
    assert again.take_liquidations() == []
