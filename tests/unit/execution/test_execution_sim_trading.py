"""The simulated Binance trading API, driven with hand-signed raw HTTP requests."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal as D
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web
from execution_helpers import API_KEY, API_SECRET, FILTERS, FakeClock, StaticBook, Venue, levels

from algostream.sim.trading import SIMULATOR_KEY, FaultKind, SymbolFilters, add_trading_routes


async def _call(
    http: httpx.AsyncClient,
    venue: Venue,
    method: str,
    path: str,
    params: list[tuple[str, str]],
    *,
    key: str = API_KEY,
    secret: str = API_SECRET,
    ts_offset_ms: int = 0,
    tamper: bool = False,
) -> httpx.Response:
    query = urlencode([*params, ("timestamp", str(venue.clock.now + ts_offset_ms))])
    sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
    if tamper:
        query = query.replace("BUY", "SELL")
    return await http.request(
        method, f"{venue.url}{path}?{query}&signature={sig}", headers={"X-MBX-APIKEY": key}
    )


def _order(coid: str, qty: str = "1", kind: str = "MARKET", **extra: str) -> list[tuple[str, str]]:
    params = [
        ("symbol", "BTCUSDT"),
        ("side", "BUY"),
        ("type", kind),
        ("quantity", qty),
        ("newClientOrderId", coid),
    ]
    return params + list(extra.items())


def _code(resp: httpx.Response) -> Any:
    return resp.json()["code"]


async def test_valid_signed_order_is_placed(venue: Venue, http: httpx.AsyncClient) -> None:
    resp = await _call(http, venue, "POST", "/api/v3/order", _order("a"))
    assert resp.status_code == 200 and resp.json()["status"] == "FILLED"
    assert int(resp.headers["X-MBX-USED-WEIGHT-1M"]) >= 1
    assert [e.client_order_id for e in venue.sim.ledger] == ["a"]


async def test_tampered_query_fails_signature_check(venue: Venue, http: httpx.AsyncClient) -> None:
    resp = await _call(http, venue, "POST", "/api/v3/order", _order("a"), tamper=True)
    assert (resp.status_code, _code(resp)) == (400, -1022)
    wrong = await _call(http, venue, "POST", "/api/v3/order", _order("b"), secret="other")
    assert _code(wrong) == -1022 and venue.sim.ledger == []


async def test_wrong_api_key_is_refused(venue: Venue, http: httpx.AsyncClient) -> None:
    resp = await _call(http, venue, "GET", "/api/v3/account", [], key="nope")
    assert (resp.status_code, _code(resp)) == (401, -2015)


async def test_timestamp_outside_recv_window(venue: Venue, http: httpx.AsyncClient) -> None:
    stale = await _call(
        http, venue, "GET", "/api/v3/account", [("recvWindow", "5000")], ts_offset_ms=-5001
    )
    ahead = await _call(http, venue, "GET", "/api/v3/account", [], ts_offset_ms=1000)
    ok = await _call(
        http, venue, "GET", "/api/v3/account", [("recvWindow", "5000")], ts_offset_ms=-5000
    )
    assert (_code(stale), _code(ahead), ok.status_code) == (-1021, -1021, 200)


async def test_ignoring_retry_after_gets_418(venue: Venue, http: httpx.AsyncClient) -> None:
    venue.sim.inject(FaultKind.RATE_LIMIT, retry_after_s=5)
    first = await _call(http, venue, "GET", "/api/v3/account", [])
    assert (first.status_code, first.headers["Retry-After"]) == (429, "5")
    venue.clock.now += 1000  # came back after 1 s instead of 5, and keeps coming
    again = [await _call(http, venue, "GET", "/api/v3/account", []) for _ in range(3)]
    assert [r.status_code for r in again] == [429, 429, 418]
    second = again[-1]
    assert int(second.headers["Retry-After"]) > 5 and _code(second) == -1003
    venue.clock.now += int(second.headers["Retry-After"]) * 1000
    assert (await _call(http, venue, "GET", "/api/v3/account", [])).status_code == 200


async def test_request_weight_limit_answers_429(clock: Any, book: StaticBook) -> None:
    app = web.Application()
    sim = add_trading_routes(
        app, book, API_KEY, API_SECRET, FILTERS, clock_ms=clock.now_ms, max_weight_1m=30
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    venue = Venue(sim, "http://{}:{}".format(*runner.addresses[0][:2]), book, clock)
    try:
        async with httpx.AsyncClient() as http:
            assert (await _call(http, venue, "GET", "/api/v3/account", [])).status_code == 200
            limited = await _call(http, venue, "GET", "/api/v3/account", [])
            assert (limited.status_code, _code(limited)) == (429, -1003)
            clock.now += int(limited.headers["Retry-After"]) * 1000
            assert (await _call(http, venue, "GET", "/api/v3/account", [])).status_code == 200
    finally:
        await runner.cleanup()


async def test_duplicate_client_order_id_is_refused_and_recorded(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    resting = _order("same", kind="LIMIT", timeInForce="GTC", price="99.00")
    await _call(http, venue, "POST", "/api/v3/order", resting)
    dup = await _call(http, venue, "POST", "/api/v3/order", resting)
    assert (dup.status_code, _code(dup), dup.json()["msg"]) == (400, -2010, "Duplicate order sent.")
    assert venue.sim.placements("same") == 1 and venue.sim.duplicate_attempts == ["same"]


async def test_client_order_id_of_a_closed_order_can_be_reused(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    """Binance refuses a duplicate only while the first order is open."""
    first = await _call(http, venue, "POST", "/api/v3/order", _order("again"))
    second = await _call(http, venue, "POST", "/api/v3/order", _order("again", qty="0.5"))
    assert first.json()["status"] == "FILLED" and second.status_code == 200
    assert second.json()["orderId"] != first.json()["orderId"]
    assert venue.sim.placements("again") == 2


async def test_invalid_symbol_and_missing_parameter(venue: Venue, http: httpx.AsyncClient) -> None:
    params = [("symbol", "DOGEUSDT"), *_order("x")[1:]]
    assert _code(await _call(http, venue, "POST", "/api/v3/order", params)) == -1121
    no_price = await _call(
        http, venue, "POST", "/api/v3/order", _order("y", kind="LIMIT", timeInForce="GTC")
    )
    assert _code(no_price) == -1102 and "'price'" in no_price.json()["msg"]


async def test_market_order_beyond_depth_expires_with_partial_fill(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    resp = (await _call(http, venue, "POST", "/api/v3/order", _order("big", qty="10"))).json()
    assert resp["status"] == "EXPIRED" and D(resp["executedQty"]) == D(8)
    assert {D(f["price"]) for f in resp["fills"]} == {D("100.01"), D("100.02"), D("100.05")}


async def test_fok_limit_expires_without_fills_when_short(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    params = _order("fok", qty="2", kind="LIMIT", timeInForce="FOK", price="100.01")
    resp = (await _call(http, venue, "POST", "/api/v3/order", params)).json()
    assert (resp["status"], D(resp["executedQty"]), resp["fills"]) == ("EXPIRED", 0, [])


async def test_fills_move_balances_with_commission_in_received_asset(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    venue.sim.balances = {"USDT": D("1000"), "BTC": D("0")}
    await _call(http, venue, "POST", "/api/v3/order", _order("bal", qty="1"))
    assert venue.sim.balances == {"USDT": D("1000") - D("100.01"), "BTC": D("0.999")}
    account = (await _call(http, venue, "GET", "/api/v3/account", [])).json()
    assert {b["asset"]: b["free"] for b in account["balances"]}["BTC"] == "0.999"


async def test_existing_time_route_is_kept_and_simulator_is_reachable_from_app(
    book: StaticBook,
) -> None:
    app = web.Application()

    async def own_time(_: web.Request) -> web.Response:
        return web.json_response({"serverTime": 1})

    app.router.add_get("/api/v3/time", own_time)
    sim = add_trading_routes(app, book, API_KEY, API_SECRET, {})
    time_routes = [
        r
        for r in app.router.routes()
        if r.method == "GET" and r.resource is not None and r.resource.canonical == "/api/v3/time"
    ]
    assert len(time_routes) == 1 and app[SIMULATOR_KEY] is sim


def test_filters_parse_binance_filter_lists_and_spec_objects() -> None:
    from_list = SymbolFilters.parse(
        [
            {"filterType": "PRICE_FILTER", "tickSize": "0.01", "minPrice": "0.01"},
            {"filterType": "LOT_SIZE", "stepSize": "0.001", "minQty": "0.001", "maxQty": "100"},
            {"filterType": "NOTIONAL", "minNotional": "5"},
        ]
    )
    assert (from_list.tick_size, from_list.step_size, from_list.max_qty) == (
        D("0.01"),
        D("0.001"),
        D("100"),
    )

    class Spec:
        tick_size, step_size, min_notional = D("0.5"), D("1"), D("10")
        base_asset, quote_asset = "ETH", "USDT"

    spec = SymbolFilters.parse(Spec())
    assert (spec.tick_size, spec.base_asset) == (D("0.5"), "ETH")


async def test_trading_routes_on_the_synthetic_market(http: httpx.AsyncClient) -> None:
    from algostream.sim.market import SimMarket
    from algostream.sim.trading import trading_setup

    market = SimMarket.create(["BTCUSDT"], seed=3)
    app = web.Application()
    trading_setup(API_KEY, API_SECRET)(app, market)
    sim = app[SIMULATOR_KEY]
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        _, asks = market.book("BTCUSDT")
        spec = market.spec("BTCUSDT")
        qty = max(spec.step_size, (spec.min_notional / asks[0][0]).quantize(spec.step_size) * 2)
        clock = FakeClock(now=sim.server_time_ms())  # only to stamp requests with wall time
        url = "http://{}:{}".format(*runner.addresses[0][:2])
        venue = Venue(sim, url, StaticBook([], []), clock)
        resp = await _call(http, venue, "POST", "/api/v3/order", _order("m1", qty=str(qty)))
        body = resp.json()
        assert resp.status_code == 200, body
        assert body["status"] in ("FILLED", "EXPIRED")
        offered = {p for p, _ in asks}
        assert body["fills"] and all(D(f["price"]) in offered for f in body["fills"])
    finally:
        await runner.cleanup()


async def test_stop_loss_limit_rests_untriggered_then_works_when_the_price_reaches_it(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    params = _order("stop", kind="STOP_LOSS_LIMIT", timeInForce="GTC", price="101.00")
    params.append(("stopPrice", "100.50"))
    placed = await _call(http, venue, "POST", "/api/v3/order", params)
    assert placed.status_code == 200 and "status" not in placed.json()  # ACK by default
    venue.book.bids = levels(("100.59", "1"))
    venue.book.asks = levels(("100.61", "2"))  # mid 100.60 >= stop 100.50: triggered
    order = (
        await _call(
            http,
            venue,
            "GET",
            "/api/v3/order",
            [*_order("stop")[:1], ("origClientOrderId", "stop")],
        )
    ).json()
    assert (order["status"], D(order["executedQty"]), D(order["cummulativeQuoteQty"])) == (
        "FILLED",
        D(1),
        D("100.61"),
    )


async def test_stop_that_would_trigger_at_once_and_limit_maker_that_would_take(
    venue: Venue, http: httpx.AsyncClient
) -> None:
    stop = _order("s2", kind="STOP_LOSS_LIMIT", timeInForce="GTC", price="99.00")
    stop.append(("stopPrice", "99.50"))  # a BUY stop below the market triggers now
    maker = _order("m2", kind="LIMIT_MAKER", price="100.01")  # the best ask: would take
    answers = [await _call(http, venue, "POST", "/api/v3/order", p) for p in (stop, maker)]
    assert [r.json()["msg"] for r in answers] == [
        "Stop price would trigger immediately.",
        "Order would immediately match and take.",
    ]
    assert venue.sim.ledger == []
