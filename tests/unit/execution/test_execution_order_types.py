"""Post-only, stop and take-profit orders: the request's rules, the paper broker's
lifecycle (ACCEPTED, held, TRIGGERED, then filled as MARKET or LIMIT) on ``orders.events``."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import httpx
import pytest
from execution_helpers import INSTRUMENT, Venue, levels, live_router, make_top

from algostream.execution.paper import PaperBroker
from algostream.model import OrderRequest, OrderType, Side, TradeTick
from algostream.model.errors import RecordDecodeError


def request(coid: str, side: Side, kind: OrderType, **kw: Any) -> OrderRequest:
    fields: dict[str, Any] = {
        "instrument": INSTRUMENT, "ts_event": 1, "ts_init": 1, "record_id": f"a-{coid}",
        "lineage_id": f"p-{coid}", "account": "paper", "client_order_id": coid,
        "strategy": "s", "side": side, "order_type": kind, "quantity": "1",
    } | kw  # fmt: skip
    return OrderRequest(**fields)


def broker_at(mid: str) -> PaperBroker:
    b = PaperBroker(fee_rate=D("0"))
    m = D(mid)
    b.on_book_top(make_top(levels((str(m - D("0.5")), "5")), levels((str(m + D("0.5")), "5")), 1))
    return b


def statuses(events: list[Any]) -> list[str]:
    return [e.status.value for e in events]


def trade(price: str, ts: int = 5) -> TradeTick:
    return TradeTick(instrument=INSTRUMENT, ts_event=ts, ts_init=ts, record_id=f"t{ts}",
                     lineage_id="r", trade_id=str(ts), price=price, size="1",
                     aggressor_side=Side.BUY)  # fmt: skip


def test_request_rules_name_the_field_and_value() -> None:
    with pytest.raises(ValueError, match="STOP_MARKET needs a stop_price"):
        request("x", Side.SELL, OrderType.STOP_MARKET)
    with pytest.raises(ValueError, match="stop_price=5 is only for stop"):
        request("x", Side.SELL, OrderType.LIMIT, limit_price="5", stop_price="5")
    with pytest.raises(ValueError, match="only a LIMIT GTC order can be post-only"):
        request("x", Side.BUY, OrderType.MARKET, post_only=True)
    with pytest.raises(RecordDecodeError, match="needs a stop_price"):
        OrderRequest.decode(request("x", Side.BUY, OrderType.MARKET).encode().replace(
            b'"MARKET"', b'"STOP_LIMIT"'))  # fmt: skip
    assert OrderType.STOP_MARKET.triggers_on_rise(Side.BUY)
    assert not OrderType.TAKE_PROFIT_LIMIT.triggers_on_rise(Side.BUY)


def test_post_only_that_would_take_is_rejected_and_one_that_rests_is_a_maker() -> None:
    b = broker_at("100")
    (rejected,) = b.submit(
        request("p1", Side.BUY, OrderType.LIMIT, limit_price="100.5", post_only=True), 2
    )
    assert rejected.status.value == "REJECTED" and "post_only" in rejected.reason
    assert "100.5" in rejected.reason
    rests = b.submit(
        request("p2", Side.BUY, OrderType.LIMIT, limit_price="99.8", post_only=True), 2
    )
    assert statuses(rests) == ["ACCEPTED"]
    fills = b.on_book_top(make_top(levels(("99.0", "5")), levels(("99.7", "5")), 3))
    assert statuses(fills) == ["FILLED"] and fills[0].fill_price == D("99.7")


def test_stop_market_is_held_then_triggered_then_filled() -> None:
    b = broker_at("100")
    held = b.submit(request("s1", Side.SELL, OrderType.STOP_MARKET, stop_price="99"), 2)
    assert statuses(held) == ["ACCEPTED"] and held[0].stop_price == D("99")
    assert b.on_book_top(make_top(levels(("99.5", "5")), levels(("100.5", "5")), 3)) == []
    events = b.on_book_top(make_top(levels(("98.4", "5")), levels(("98.6", "5")), 4))
    assert statuses(events) == ["TRIGGERED", "FILLED"]
    assert "stop_price 99 reached at 98.5" in events[0].reason
    assert events[1].fill_price == D("98.4")


def test_take_profit_limit_triggers_on_a_trade_and_works_as_a_limit() -> None:
    b = broker_at("100")
    held = b.submit(
        request("t1", Side.SELL, OrderType.TAKE_PROFIT_LIMIT, stop_price="102", limit_price="103"),
        2,
    )
    assert statuses(held) == ["ACCEPTED"]
    events = b.on_trade(trade("102"))
    assert statuses(events) == ["TRIGGERED"]  # the book's bid (99.5) is below the limit
    assert b.get("t1") is not None and b.get("t1").status.value == "TRIGGERED"  # type: ignore[union-attr]
    fills = b.on_book_top(make_top(levels(("103.2", "5")), levels(("103.4", "5")), 6))
    assert statuses(fills) == ["FILLED"] and fills[0].fill_price == D("103.2")


def test_a_stop_that_would_trigger_at_once_is_rejected() -> None:
    b = broker_at("100")
    (ev,) = b.submit(request("s2", Side.BUY, OrderType.STOP_LIMIT, stop_price="99",
                             limit_price="101"), 2)  # fmt: skip
    assert ev.status.value == "REJECTED" and "would trigger at once" in ev.reason


def test_a_held_order_cancels_and_survives_a_state_round_trip() -> None:
    b = broker_at("100")
    b.submit(request("h1", Side.SELL, OrderType.STOP_MARKET, stop_price="95"), 2)
    b.submit(request("h2", Side.BUY, OrderType.STOP_MARKET, stop_price="105"), 2)
    assert {o.client_order_id for o in b.open_orders()} == {"h1", "h2"}
    restored = PaperBroker(fee_rate=D("0"))
    restored.load_state(b.to_state())
    assert statuses(restored.cancel("h1", 3)) == ["CANCELLED"]
    restored.on_book_top(make_top(levels(("105", "5")), levels(("105.2", "5")), 4))
    assert restored.get("h2").status.value == "FILLED"  # type: ignore[union-attr]


# --------------------------------------------------------------------------- live Binance


async def test_live_post_only_is_limit_maker_refused_when_it_would_take(
    http: httpx.AsyncClient, venue: Venue
) -> None:
    router = live_router(http, venue)
    taker = request("lm1", Side.BUY, OrderType.LIMIT, limit_price="100.02", post_only=True)
    (ev,) = await router.submit(taker, 5)
    assert ev.status.value == "REJECTED" and "would immediately match and take" in ev.reason
    maker = request("lm2", Side.BUY, OrderType.LIMIT, limit_price="99.50", post_only=True)
    assert statuses(await router.submit(maker, 5)) == ["ACCEPTED"]
    placed = [o for o in venue.sim.orders.values() if o.client_order_id == "lm2"]
    assert placed[0].type == "LIMIT_MAKER"


async def test_live_stop_market_is_held_by_the_venue_until_triggered(
    http: httpx.AsyncClient, venue: Venue
) -> None:
    router = live_router(http, venue)
    stop = request("sl1", Side.SELL, OrderType.STOP_MARKET, stop_price="99.5")
    assert statuses(await router.submit(stop, 5)) == ["ACCEPTED"]
    (held,) = [o for o in venue.sim.orders.values() if o.client_order_id == "sl1"]
    assert held.type == "STOP_LOSS" and not held.working and held.stop_price == D("99.5")
    venue.book.bids = levels(("99.40", "3"))
    venue.book.asks = levels(("99.45", "3"))
    venue.sim.on_market_event()
    events = await router.refresh("sl1", 6)
    assert statuses(events) == ["TRIGGERED", "FILLED"] and events[1].fill_price == D("99.40")


async def test_live_take_profit_limit_maps_to_binance(
    http: httpx.AsyncClient, venue: Venue
) -> None:
    router = live_router(http, venue)
    tp = request("tp1", Side.SELL, OrderType.TAKE_PROFIT_LIMIT, stop_price="101",
                 limit_price="101")  # fmt: skip
    assert statuses(await router.submit(tp, 5)) == ["ACCEPTED"]
    (held,) = [o for o in venue.sim.orders.values() if o.client_order_id == "tp1"]
    assert held.type == "TAKE_PROFIT_LIMIT" and held.price == D("101")
