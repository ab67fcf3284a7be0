"""Positions compared while running (USD-M live, the simulator's user data stream): each
``ACCOUNT_UPDATE`` against the ledger, after the fills of the same event are applied.
A position traded by hand at the venue is adopted (a ``POSITION_ADOPTED`` fill) or halts
trading above the tolerance (lifted when the venue agrees again); an instrument with an
order of ours in flight is not compared (its fill may still be on the way)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from execution_helpers import StreamRig, running, until
from test_execution_usdm_user_stream import PERP
from test_execution_usdm_user_stream import live as live  # the fixture

from algostream.config import load_settings
from algostream.execution.futures_venue import PositionWatch
from algostream.execution.usdm_client import UsdmNewOrder
from algostream.execution.usdm_stream import AccountUpdate, VenuePosition
from algostream.model import OrderStatus, OrderType, Side

D = Decimal


def watch(rule: str = "adopt", tolerance: str = "0") -> PositionWatch:
    env = {
        "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
        "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
        "ALGOSTREAM__RISK__POSITION_MISMATCH": rule,
        "ALGOSTREAM__RISK__POSITION_MISMATCH_TOLERANCE": tolerance,
        "ALGOSTREAM__RISK__ACCOUNT": "acct",
    }
    return PositionWatch(load_settings(env=env))


async def by_hand(live: StreamRig, side: Side, coid: str, qty: str = "0.01") -> None:
    """A MARKET order placed at the venue by someone else: the ledger knows nothing of it."""
    await live.client.new_order(UsdmNewOrder("BTCUSDT", side, OrderType.MARKET, D(qty), coid))


def updates(live: StreamRig) -> int:
    return sum(e["e"] == "ACCOUNT_UPDATE" for e in live.raw)


@pytest.fixture
async def streaming(live: StreamRig) -> AsyncIterator[StreamRig]:
    stream = live.stream()
    async for _ in running(stream):
        await until(stream.live.is_set, "stream up")
        yield live


async def test_a_hand_trade_at_the_venue_is_adopted_with_a_warned_difference(
    streaming: StreamRig,
) -> None:
    live = streaming
    live.router.positions = watch("adopt")
    await by_hand(live, Side.SELL, "hand-1")
    await until(lambda: updates(live) == 1, "ACCOUNT_UPDATE")
    (check,) = live.router.take_position_checks()
    (diff,) = check.diffs
    assert (diff.instrument, diff.local, diff.venue) == (PERP, D(0), D("-0.01"))
    assert check.halt is None and not check.lifted
    (adopt,) = live.fills()
    assert adopt.reason.startswith("POSITION_ADOPTED") and adopt.venue == "BINANCE_USDM"
    assert (adopt.side, adopt.fill_qty, adopt.status) == (Side.SELL, D("0.01"), OrderStatus.FILLED)
    assert adopt.account == "acct" and adopt.fill_price == diff.venue_entry
    assert live.router.positions.local == {PERP: D("-0.01")}  # ours now: no second adoption
    await by_hand(live, Side.SELL, "hand-2")
    await until(lambda: updates(live) == 2, "second ACCOUNT_UPDATE")
    (check,) = live.router.take_position_checks()
    assert [(d.local, d.venue) for d in check.diffs] == [(D("-0.01"), D("-0.02"))]
    assert live.router.positions.local == {PERP: D("-0.02")}


async def test_above_the_tolerance_it_halts_and_the_venue_agreeing_again_lifts_it(
    streaming: StreamRig,
) -> None:
    live = streaming
    live.router.positions = watch("halt", tolerance="0.005")
    await by_hand(live, Side.SELL, "hand-3")
    await until(lambda: updates(live) == 1, "ACCOUNT_UPDATE")
    (check,) = live.router.take_position_checks()
    assert check.halt is not None and check.halt.startswith("POSITION_MISMATCH")
    assert f"{PERP} ours 0 venue -0.01" in check.halt
    assert live.fills() == []  # nothing adopted: an operator looks first
    await by_hand(live, Side.SELL, "hand-4")  # still different: no second halt
    await until(lambda: updates(live) == 2, "second ACCOUNT_UPDATE")
    (check,) = live.router.take_position_checks()
    assert check.halt is None and not check.lifted and check.diffs
    await by_hand(live, Side.BUY, "hand-5", qty="0.02")  # flat again: ours and theirs agree
    await until(lambda: updates(live) == 3, "third ACCOUNT_UPDATE")
    (check,) = live.router.take_position_checks()
    assert check.lifted and check.diffs == [] and check.halt is None


async def test_our_own_fill_is_no_mismatch_and_an_order_in_flight_defers_the_comparison(
    streaming: StreamRig,
) -> None:
    live = streaming
    live.router.positions = watch("halt")
    await live.sell_at_ask("own-1")  # resting: in flight until it fills
    await by_hand(live, Side.SELL, "hand-6")
    await until(lambda: updates(live) == 1, "ACCOUNT_UPDATE")
    assert live.router.take_position_checks() == []  # BTCUSDT busy: not compared
    live.cross()  # ours fills: its ORDER_TRADE_UPDATE comes before the ACCOUNT_UPDATE
    await until(lambda: updates(live) == 2, "ACCOUNT_UPDATE of our fill")
    assert [f.client_order_id for f in live.fills()] == ["own-1"]
    (check,) = live.router.take_position_checks()
    # now compared: our fill counted, only the hand trade differs
    assert [(d.local, d.venue) for d in check.diffs] == [(D("-0.01"), D("-0.02"))]


def test_hedge_mode_rows_and_busy_instruments_are_not_compared() -> None:
    w = watch("halt")
    hedge = VenuePosition("BTCUSDT", D("-1"), D("100"), position_side="SHORT")
    check = w.on_account_update(AccountUpdate("ORDER", 1, {}, (hedge,)), set(), 1)
    assert check.diffs == [] and check.halt is None
    one_way = VenuePosition("BTCUSDT", D("-1"), D("100"))
    check = w.on_account_update(AccountUpdate("ORDER", 2, {}, (one_way,)), {PERP}, 2)
    assert check.diffs == []
    check = w.on_account_update(AccountUpdate("ORDER", 3, {}, (one_way,)), set(), 3)
    assert check.halt is not None and "ours 0 venue -1" in check.halt
