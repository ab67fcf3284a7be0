"""Coinbase Advanced Trade order entry against the simulator's real HTTP server: the
documented JWT (ES256) auth, refused as Coinbase does (401); create / get / list / cancel;
safe retries (an unknown outcome is looked up, never placed twice); refusals named;
reconciliation on start; keys only from the environment and never shown."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from execution_helpers import FILTERS, FakeClock, StaticBook, levels, make_request

from algostream.execution.coinbase_client import (
    CoinbaseCredentials,
    CoinbaseNewOrder,
    CoinbaseRestClient,
    build_jwt,
)
from algostream.execution.coinbase_orders import (
    CoinbaseExecution,
    coinbase_order,
    protective_stop_limit,
)
from algostream.execution.errors import CoinbaseAuthError, CoinbaseError, ExecutionError
from algostream.execution.orders import ManagedOrder
from algostream.execution.retry import RetryPolicy
from algostream.model import OrderRequest, OrderType, Side
from algostream.sim.coinbase_trading import CoinbaseTradingSimulator, add_coinbase_trading_routes
from algostream.sim.trading import TradingSimulator

KEY_NAME = "organizations/0c0ffee0-0000-4000-8000-000000000001/apiKeys/test-key-1"
INSTRUMENT = "COINBASE:BTC-USDT"
NOW_NS = 1_700_000_000_000_000_000


def key_pair() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,  # "EC PRIVATE KEY", as CDP issues
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


PRIVATE, PUBLIC = key_pair()


@dataclass
class Coinbase:
    sim: CoinbaseTradingSimulator
    url: str
    clock: FakeClock

    @property
    def engine(self) -> TradingSimulator:
        return self.sim.engine


@pytest.fixture
async def venue() -> AsyncIterator[Coinbase]:
    clock = FakeClock()
    book = StaticBook(
        bids=levels(("100.00", "1"), ("99.99", "2")), asks=levels(("100.01", "1"), ("100.02", "2"))
    )
    engine = TradingSimulator(book, "-", "-", FILTERS, clock_ms=clock.now_ms, hang_s=5.0)
    app = web.Application()
    sim = add_coinbase_trading_routes(app, engine, KEY_NAME, PUBLIC, {"BTC-USDT": "BTCUSDT"})
    runner = web.AppRunner(app, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield Coinbase(sim, f"http://{host}:{port}", clock)
    finally:
        engine.release()
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def client(
    http: httpx.AsyncClient, v: Coinbase, *, private: str = PRIVATE, skew_s: int = 0
) -> CoinbaseRestClient:
    creds = CoinbaseCredentials(key_name=KEY_NAME, private_key=private)
    return CoinbaseRestClient(
        http,
        creds,
        base_url=v.url,
        rate_limit_per_second=1000,
        retry=RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.1),
        timeout_s=2.0,
        clock_s=lambda: v.clock.now_ms() // 1000 + skew_s,
        sleep=v.clock.sleep,
    )


def order(coid: str = "c1", **kw: object) -> CoinbaseNewOrder:
    fields: dict[str, object] = {
        "product_id": "BTC-USDT",
        "side": Side.BUY,
        "kind": "LIMIT",
        "base_size": Decimal("0.5"),
        "client_order_id": coid,
        "limit_price": Decimal("99.00"),
    } | kw
    return CoinbaseNewOrder(**fields)  # type: ignore[arg-type]


def test_jwt_has_the_documented_header_and_claims() -> None:
    creds = CoinbaseCredentials(key_name=KEY_NAME, private_key=PRIVATE)
    token = build_jwt(creds, "post", "api.coinbase.com", "/api/v3/brokerage/orders", 1000)
    head = jwt.get_unverified_header(token)
    assert head["alg"] == "ES256" and head["kid"] == KEY_NAME and len(head["nonce"]) >= 16
    claims = jwt.decode(token, PUBLIC, algorithms=["ES256"], options={"verify_exp": False,
                        "verify_nbf": False})  # fmt: skip
    assert claims == {"sub": KEY_NAME, "iss": "cdp", "nbf": 1000, "exp": 1120,
                      "uri": "POST api.coinbase.com/api/v3/brokerage/orders"}  # fmt: skip
    again = build_jwt(creds, "POST", "api.coinbase.com", "/api/v3/brokerage/orders", 1000)
    assert jwt.get_unverified_header(again)["nonce"] != head["nonce"]


async def test_market_order_fills_and_limit_order_rests_then_cancels(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    ex = CoinbaseExecution(client(http, venue))
    events = await ex.submit(make_request("m1", qty="0.5", instrument=INSTRUMENT), NOW_NS)
    assert [e.status.value for e in events] == ["ACCEPTED", "FILLED"]
    assert events[-1].fill_price == Decimal("100.01") and events[-1].venue == "COINBASE"
    limit = make_request("l1", qty="0.5", order_type=OrderType.LIMIT, limit="99",
                         instrument=INSTRUMENT)  # fmt: skip
    assert [e.status.value for e in await ex.submit(limit, NOW_NS)] == ["ACCEPTED"]
    listed = await client(http, venue).list_orders(statuses=["OPEN"])
    assert [o["client_order_id"] for o in listed] == ["l1"]
    assert listed[0]["order_configuration"]["limit_limit_gtc"]["limit_price"] == "99.00000000"
    cancelled = await ex.cancel("l1", NOW_NS)
    assert [e.status.value for e in cancelled] == ["CANCELLED"]
    assert venue.sim.refused_auth == [] and len(venue.sim.nonces) >= 5


@pytest.mark.parametrize("bad", ["other key", "expired", "not yet valid", "wrong uri", "none"])
async def test_a_bad_jwt_is_refused_with_401(
    venue: Coinbase, http: httpx.AsyncClient, bad: str
) -> None:
    if bad == "wrong uri":
        creds = CoinbaseCredentials(key_name=KEY_NAME, private_key=PRIVATE)
        now = venue.clock.now_ms() // 1000
        token = build_jwt(creds, "GET", "127.0.0.1", "/api/v3/brokerage/orders/historical/x", now)
        resp = await http.get(f"{venue.url}/api/v3/brokerage/orders/historical/batch",
                              headers={"Authorization": f"Bearer {token}"})  # fmt: skip
        assert resp.status_code == 401 and resp.text.strip() == "Unauthorized"
        assert venue.sim.refused_auth[-1].startswith("uri is not")
        return
    if bad == "none":
        resp = await http.get(f"{venue.url}/api/v3/brokerage/orders/historical/batch")
        assert resp.status_code == 401
        return
    private = key_pair()[0] if bad == "other key" else PRIVATE
    skew = {"expired": -600, "not yet valid": 600}.get(bad, 0)
    with pytest.raises(CoinbaseAuthError) as info:
        await client(http, venue, private=private, skew_s=skew).list_orders()
    assert info.value.status == 401 and PRIVATE not in str(info.value)
    assert venue.engine.placements("c1") == 0 and venue.sim.refused_auth


@pytest.mark.parametrize("fault", ["5xx_after_place", "5xx_before", "timeout"])
async def test_an_unknown_outcome_is_looked_up_and_never_placed_twice(
    venue: Coinbase, http: httpx.AsyncClient, fault: str
) -> None:
    venue.engine.inject(fault, 1)
    venue.engine.hang_s = 0.0  # the timeout fault answers late: the client gave up
    c = client(http, venue)
    if fault == "timeout":
        c._timeout_s = 0.05
        venue.engine.hang_s = 1.0
    found = await c.create_order(order("r1"))
    assert found["client_order_id"] == "r1" and found["status"] == "OPEN"
    assert venue.engine.placements("r1") == 1


async def test_a_repeated_client_order_id_returns_the_existing_order(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    c = client(http, venue)
    first = await c.create_order(order("d1"))
    second = await c.create_order(order("d1", limit_price=Decimal("98")))
    assert first["order_id"] == second["order_id"] and venue.engine.placements("d1") == 1


async def test_refusals_are_rejected_events_naming_the_reason(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    venue.engine.balances = {"USDT": Decimal("1"), "BTC": Decimal("0")}
    ex = CoinbaseExecution(client(http, venue))
    (rejected,) = await ex.submit(make_request("f1", qty="0.5", instrument=INSTRUMENT), NOW_NS)
    assert rejected.status.value == "REJECTED" and "INSUFFICIENT_FUND" in rejected.reason
    venue.engine.balances = None
    answer = await http.post(f"{venue.url}/api/v3/brokerage/orders", json={})
    assert answer.status_code == 401  # no JWT: refused before the body is read
    with pytest.raises(ExecutionError, match="post_only needs time_in_force GTC"):
        order("p", post_only=True, time_in_force="IOC").configuration()


async def test_post_only_that_would_take_is_refused_by_the_venue(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    c = client(http, venue)
    from algostream.execution.errors import CoinbaseRejectedError

    with pytest.raises(CoinbaseRejectedError, match="INVALID_LIMIT_PRICE_POST_ONLY"):
        await c.create_order(order("po1", limit_price=Decimal("100.05"), post_only=True))
    rests = await c.create_order(order("po2", limit_price=Decimal("99.5"), post_only=True))
    assert rests["status"] == "OPEN"
    assert rests["order_configuration"]["limit_limit_gtc"]["post_only"] is True


async def test_stop_limit_is_held_by_the_venue(venue: Coinbase, http: httpx.AsyncClient) -> None:
    c = client(http, venue)
    held = await c.create_order(
        order(
            "s1",
            side=Side.SELL,
            kind="STOP_LIMIT",
            limit_price=Decimal("95"),
            stop_price=Decimal("96"),
            stop_direction="STOP_DOWN",
        )
    )
    assert held["status"] == "OPEN" and held["trigger_status"] == "STOP_PENDING"
    assert held["order_type"] == "STOP_LIMIT"


async def test_reconcile_on_start_catches_up_with_the_venue(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    c = client(http, venue)
    await c.create_order(order("k1", kind="MARKET", limit_price=None))  # filled at the venue
    await c.create_order(order("k2"))  # resting
    local = {
        "k1": ManagedOrder(make_request("k1", qty="0.5", instrument=INSTRUMENT), venue="COINBASE"),
        "k2": ManagedOrder(make_request("k2", qty="0.5", order_type=OrderType.LIMIT,
                                        limit="99", instrument=INSTRUMENT), venue="COINBASE"),
        "k3": ManagedOrder(make_request("k3", qty="0.5", instrument=INSTRUMENT), venue="COINBASE"),
    }  # fmt: skip
    result = await CoinbaseExecution(c).reconcile(local, now_ns=NOW_NS)
    by_order = {(e.client_order_id, e.status.value) for e in result.events}
    assert by_order == {("k1", "ACCEPTED"), ("k1", "FILLED"), ("k2", "ACCEPTED"),
                        ("k3", "REJECTED")}  # fmt: skip


def test_credentials_come_from_the_environment_and_are_never_shown(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ExecutionError, match="ALGOSTREAM_COINBASE_PRIVATE_KEY") as info:
        CoinbaseCredentials.from_env({"ALGOSTREAM_COINBASE_KEY_NAME": KEY_NAME})
    assert KEY_NAME not in str(info.value)
    creds = CoinbaseCredentials.from_env(
        {"ALGOSTREAM_COINBASE_KEY_NAME": KEY_NAME,
         "ALGOSTREAM_COINBASE_PRIVATE_KEY": PRIVATE.replace("\n", "\\n")}  # one-line form
    )  # fmt: skip
    assert creds.private_key.get_secret_value() == PRIVATE
    assert PRIVATE not in repr(creds) and KEY_NAME not in repr(creds)
    bad = CoinbaseCredentials(key_name=KEY_NAME, private_key="not a key at all, secret-123")
    with pytest.raises(ExecutionError) as err:
        build_jwt(bad, "GET", "h", "/p", 1)
    assert "secret-123" not in str(err.value)
    rest = CoinbaseRestClient(httpx.AsyncClient(), creds)
    assert PRIVATE not in repr(rest) and KEY_NAME not in repr(rest)


async def test_order_types_coinbase_lacks_are_rejected_naming_the_type(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    ex = CoinbaseExecution(client(http, venue))
    stop_market = make_request("x1", side=Side.SELL, qty="0.5", instrument=INSTRUMENT)
    stop_market = stop_market.model_copy(
        update={"order_type": OrderType.STOP_MARKET, "stop_price": Decimal("95")}
    )
    (ev,) = await ex.submit(stop_market, NOW_NS)
    assert ev.status.value == "REJECTED" and "order_type=STOP_MARKET" in ev.reason
    assert venue.engine.placements("x1") == 0


async def test_platform_post_only_and_stop_limit_reach_coinbase(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    ex = CoinbaseExecution(client(http, venue))
    maker = make_request("pm1", qty="0.5", order_type=OrderType.LIMIT, limit="100.05",
                         instrument=INSTRUMENT).model_copy(update={"post_only": True})  # fmt: skip
    (ev,) = await ex.submit(maker, NOW_NS)
    assert ev.status.value == "REJECTED" and "INVALID_LIMIT_PRICE_POST_ONLY" in ev.reason
    stop = make_request("sl1", side=Side.SELL, qty="0.5", order_type=OrderType.LIMIT,
                        limit="95", instrument=INSTRUMENT).model_copy(
        update={"order_type": OrderType.STOP_LIMIT, "stop_price": Decimal("96")})  # fmt: skip
    assert [e.status.value for e in await ex.submit(stop, NOW_NS)] == ["ACCEPTED"]
    held = (await client(http, venue).list_orders(statuses=["OPEN"]))[0]
    cfg = held["order_configuration"]["stop_limit_stop_limit_gtc"]
    assert (
        cfg["stop_direction"] == "STOP_DIRECTION_STOP_DOWN" and cfg["stop_price"] == "96.00000000"
    )


async def test_the_router_sends_live_orders_to_coinbase(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    from algostream.execution.router import ExecutionRouter

    router = ExecutionRouter(coinbase=CoinbaseExecution(client(http, venue)), venue="COINBASE")
    filled = await router.submit(make_request("r-m", qty="0.5", instrument=INSTRUMENT), NOW_NS)
    assert [e.status.value for e in filled] == ["ACCEPTED", "FILLED"]
    assert filled[-1].venue == "COINBASE"
    rest = make_request("r-l", qty="0.5", order_type=OrderType.LIMIT, limit="99",
                        instrument=INSTRUMENT)  # fmt: skip
    assert [e.status.value for e in await router.submit(rest, NOW_NS)] == ["ACCEPTED"]
    assert await router.catch_up(NOW_NS) == []  # the venue says what we know
    new = make_request("r-l2", qty="0.5", order_type=OrderType.LIMIT, limit="98",
                       instrument=INSTRUMENT)  # fmt: skip
    replaced = await router.replace("r-l", new, NOW_NS)
    assert [(e.client_order_id, e.status.value) for e in replaced] == [
        ("r-l", "CANCELLED"), ("r-l2", "ACCEPTED")
    ]  # fmt: skip
    tracked = router.tracked("r-l2")
    assert tracked is not None and tracked.is_open


def test_coinbase_from_config_names_the_missing_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from algostream.config import ExecutionConfig

    for name in ("ALGOSTREAM_COINBASE_KEY_NAME", "ALGOSTREAM_COINBASE_PRIVATE_KEY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name + "_FILE", raising=False)
    with pytest.raises(ExecutionError, match="ALGOSTREAM_COINBASE_KEY_NAME"):
        CoinbaseExecution.from_config(ExecutionConfig(paper_trading=False))


def _stop_leg(side: Side, stop: str) -> OrderRequest:
    leg = make_request("ls-sl", side=side, qty="0.25", instrument=INSTRUMENT)
    return leg.model_copy(
        update={"order_type": OrderType.STOP_MARKET, "stop_price": Decimal(stop), "list_id": "ls"}
    )


@pytest.mark.parametrize(
    ("side", "stop", "tick", "bps", "limit", "direction"),
    [
        (Side.SELL, "99", "0.01", 50, "98.5", "STOP_DOWN"),  # 98.505, down to the tick
        (Side.BUY, "100.01", "0.01", 50, "100.52", "STOP_UP"),  # 100.51005, up to the tick
        (Side.SELL, "99", "0.5", 50, "98.5", "STOP_DOWN"),  # a tick not a power of ten
        (Side.BUY, "99", "0.5", 100, "100", "STOP_UP"),  # 99.99, up to 100.0
    ],
)
def test_a_list_stop_leg_is_built_as_a_protective_stop_limit(
    side: Side, stop: str, tick: str, bps: int, limit: str, direction: str
) -> None:
    req = protective_stop_limit(_stop_leg(side, stop), Decimal(tick), bps)
    assert req.order_type is OrderType.STOP_LIMIT and req.limit_price == Decimal(limit)
    assert req.stop_price == Decimal(stop) and req.list_id == "ls"
    built = coinbase_order(req)
    assert (built.kind, built.limit_price, built.stop_price, built.stop_direction) == (
        "STOP_LIMIT", Decimal(limit), Decimal(stop), direction
    )  # fmt: skip
    assert built.body() == {
        "client_order_id": "ls-sl",
        "product_id": "BTC-USDT",
        "side": side.value,
        "order_configuration": {
            "stop_limit_stop_limit_gtc": {
                "base_size": "0.25",
                "limit_price": limit,  # the exact decimal string, no exponent
                "stop_price": stop,
                "stop_direction": f"STOP_DIRECTION_{direction}",
            }
        },
    }


def test_a_stop_leg_with_no_room_for_its_limit_is_refused_naming_it() -> None:
    with pytest.raises(ExecutionError, match=r"stop_price=0\.01 less 5000 bps"):
        protective_stop_limit(_stop_leg(Side.SELL, "0.01"), Decimal("0.01"), 5000)


async def test_the_stop_leg_tick_comes_from_the_product_and_a_bad_one_rejects_the_leg(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    c = client(http, venue)
    product = await c.get_product("BTC-USDT")
    assert product["price_increment"] == "0.01" and product["product_id"] == "BTC-USDT"
    with pytest.raises(CoinbaseError) as err:
        await c.get_product("NOPE-USD")
    assert err.value.status == 404
    ex = CoinbaseExecution(c, stop_limit_slippage_bps=100)
    (ev,) = await ex.submit(_stop_leg(Side.SELL, "99"), NOW_NS)
    assert ev.status.value == "ACCEPTED"
    tracked = ex.tracked("ls-sl")
    assert tracked is not None and tracked.request.limit_price == Decimal("98.01")
    wrong = _stop_leg(Side.SELL, "99").model_copy(
        update={"client_order_id": "w-sl", "instrument": "COINBASE:NOPE-USD"}
    )
    (ev,) = await ex.submit(wrong, NOW_NS)
    assert ev.status.value == "REJECTED" and "stop-loss leg as STOP_LIMIT" in ev.reason
    assert venue.engine.placements("w-sl") == 0


async def test_a_stop_limit_off_the_tick_is_refused_as_coinbase_does(
    venue: Coinbase, http: httpx.AsyncClient
) -> None:
    off_tick = order("ot", side=Side.SELL, kind="STOP_LIMIT", limit_price=Decimal("98.505"),
                     stop_price=Decimal("99"), stop_direction="STOP_DOWN")  # fmt: skip
    with pytest.raises(CoinbaseError) as err:
        await client(http, venue).create_order(off_tick)
    assert err.value.error == "INVALID_PRICE_PRECISION"
    assert venue.engine.placements("ot") == 0
