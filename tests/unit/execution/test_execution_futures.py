"""USD-M futures accounting: shorts, flips, isolated/cross liquidation prices, funding,
reduce-only, leverage brackets and margin checks, each refusal naming field and limit."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from algostream.execution.futures import FuturesAccount, FuturesError, MarginMode
from algostream.model import Side

BTC = "BINANCE_USDM:BTCUSDT"


def test_a_short_is_a_position_and_profits_when_the_price_falls() -> None:
    acct = FuturesAccount(wallet=D("10000"))
    acct.position(BTC, leverage=10)
    acct.fill(BTC, Side.SELL, D("0.5"), D("30000"), fee=D("6"))
    pos = acct.positions[BTC]
    assert pos.side == "SHORT" and pos.qty == D("-0.5")
    assert pos.unrealized_pnl(D("29000")) == D("500")
    assert acct.fill(BTC, Side.BUY, D("0.2"), D("29000")) == D("200")
    assert pos.qty == D("-0.3") and pos.entry_price == D("30000")
    assert acct.wallet == D("10000") - D("6") + D("200")


def test_an_order_through_zero_flips_the_position_at_the_fill_price() -> None:
    acct = FuturesAccount(wallet=D("10000"))
    acct.fill(BTC, Side.SELL, D("0.1"), D("30000"))
    realized = acct.fill(BTC, Side.BUY, D("0.3"), D("31000"))
    pos = acct.positions[BTC]
    assert realized == D("-100") and pos.side == "LONG"
    assert pos.qty == D("0.2") and pos.entry_price == D("31000")


def test_isolated_liquidation_prices_long_and_short() -> None:
    acct = FuturesAccount(wallet=D("100000"))
    acct.position(BTC, leverage=10, mode=MarginMode.ISOLATED)
    acct.fill(BTC, Side.BUY, D("1"), D("30000"))
    pos = acct.positions[BTC]
    assert pos.isolated_margin == D("3000")
    liq = acct.liquidation_price(pos, D("30000"))
    assert liq is not None and liq.quantize(D("0.01")) == D("27108.43")  # 27000 / 0.996
    assert acct.maintenance_margin(pos, D("30000")) == D("120.000")
    acct.fill(BTC, Side.SELL, D("2"), D("30000"))  # flip to a 1 BTC short
    short = acct.liquidation_price(pos, D("30000"))
    assert short is not None and short.quantize(D("0.01")) == D("32868.53")  # 33000 / 1.004


def test_funding_is_paid_by_longs_to_shorts_once_per_funding_time() -> None:
    acct = FuturesAccount(wallet=D("10000"))
    acct.fill(BTC, Side.BUY, D("1"), D("30000"))
    assert acct.apply_funding(BTC, D("30000"), D("0.0001"), 8) == D("-3.0000")
    assert acct.apply_funding(BTC, D("30000"), D("0.0001"), 8) == 0  # the same time again
    assert acct.wallet == D("9997") and acct.positions[BTC].funding == D("-3")
    acct.fill(BTC, Side.SELL, D("2"), D("30000"))
    assert acct.apply_funding(BTC, D("30000"), D("0.0001"), 16) == D("3.0000")


def test_reduce_only_refuses_an_increase_or_a_flip() -> None:
    acct = FuturesAccount(wallet=D("10000"))
    acct.fill(BTC, Side.BUY, D("1"), D("30000"))
    marks = {BTC: D("30000")}
    acct.check_order(BTC, Side.SELL, D("1"), D("30000"), marks, reduce_only=True)
    for side, qty in ((Side.BUY, D("0.1")), (Side.SELL, D("1.5"))):
        with pytest.raises(FuturesError) as info:
            acct.check_order(BTC, side, qty, D("30000"), marks, reduce_only=True)
        assert info.value.reason == "REDUCE_ONLY_WOULD_INCREASE"
        assert "position 1" in str(info.value)


def test_leverage_above_the_bracket_is_refused_naming_it() -> None:
    acct = FuturesAccount(wallet=D("1000000"))
    with pytest.raises(FuturesError, match="leverage=150"):
        acct.position(BTC, leverage=150)
    acct.position(BTC, leverage=125)
    with pytest.raises(FuturesError) as info:  # 3 BTC = 90,000: the 100x bracket
        acct.check_order(BTC, Side.BUY, D("3"), D("30000"), {}, min_liquidation_distance=D(0))
    assert info.value.reason == "LEVERAGE_ABOVE_BRACKET" and info.value.limit == "100"


def test_margin_available_and_distance_to_liquidation() -> None:
    acct = FuturesAccount(wallet=D("100"))
    acct.position(BTC, leverage=10)
    with pytest.raises(FuturesError) as info:
        acct.check_order(BTC, Side.BUY, D("1"), D("30000"), {})
    assert info.value.reason == "INSUFFICIENT_MARGIN" and info.value.value == "3000"
    acct = FuturesAccount(wallet=D("1000"))
    acct.position(BTC, leverage=125)
    with pytest.raises(FuturesError) as info:  # liquidation near 29116: under 5 % away
        acct.check_order(BTC, Side.BUY, D("1"), D("30000"), {})
    assert info.value.reason == "TOO_CLOSE_TO_LIQUIDATION"
    acct.check_order(BTC, Side.BUY, D("0.1"), D("30000"), {})  # far enough


def test_margin_mode_cannot_change_with_an_open_position() -> None:
    acct = FuturesAccount(wallet=D("1000"))
    acct.fill(BTC, Side.BUY, D("0.01"), D("30000"))
    with pytest.raises(FuturesError, match="MARGIN_MODE_WITH_POSITION"):
        acct.position(BTC, mode=MarginMode.ISOLATED)
