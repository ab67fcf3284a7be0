"""A running simulator with the trading API (real aiohttp server on 127.0.0.1) and a
hand-signing helper that can put parameters in the query, the body, or both."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

import httpx

from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.spec import SymbolSpec
from algostream.sim.trading import SIMULATOR_KEY, TradingSimulator, trading_setup

#: Binance's documented example key pair ("SIGNED Endpoint Examples").
DOC_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
DOC_TIMESTAMP = 1499827319559
BALANCES = {"USDT": Decimal("100000"), "BTC": Decimal("2"), "ETH": Decimal("10")}

Params = list[tuple[str, str]]


def ltcbtc_spec() -> SymbolSpec:
    """LTCBTC priced like the documented example (a limit BUY of 1 at 0.1 BTC)."""
    return SymbolSpec(
        symbol="LTCBTC",
        start_price=Decimal("0.1"),
        tick_size=Decimal("0.000001"),
        step_size=Decimal("0.001"),
        mean_level_qty=Decimal("5"),
        base_asset="LTC",
        quote_asset="BTC",
        min_notional=Decimal("0.0001"),
    )


@dataclass
class TradingSim:
    server: SimServer
    sim: TradingSimulator
    clock: list[int]  # [now_ms], movable by the test

    @property
    def url(self) -> str:
        return self.server.http_url


async def start_trading_sim(
    *,
    market: SimMarket | None = None,
    key: str = DOC_KEY,
    secret: str = DOC_SECRET,
    balances: dict[str, Decimal] | None = None,
    now_ms: int | None = None,
    rate: float = 0,
    **options: Any,
) -> TradingSim:
    """A simulator (paused market unless ``rate``) serving the signed API."""
    market = market or SimMarket.create(["BTCUSDT", "ETHUSDT"], seed=5, levels=20)
    clock = [now_ms] if now_ms is not None else []
    clock_ns: Callable[[], int] | None = None
    if clock:
        clock_ns = lambda: clock[0] * 1_000_000  # noqa: E731
    kwargs: dict[str, Any] = {"rate": rate}
    if clock_ns is not None:
        kwargs["clock_ns"] = clock_ns
    exchange = SimExchange(market, **kwargs)
    hook = trading_setup(
        key, secret, balances=dict(BALANCES if balances is None else balances), **options
    )
    server = SimServer(exchange, setup=[hook])
    await server.start()
    return TradingSim(server, server.app[SIMULATOR_KEY], clock)


def signed(
    params: Params,
    *,
    secret: str = DOC_SECRET,
    body: Params = (),  # type: ignore[assignment]
    upper: bool = False,
    sig_in_body: bool = False,
) -> tuple[str, str]:
    """(query, body) with ``signature`` over query + body, appended where asked."""
    query, form = urlencode(params), urlencode(list(body))
    sig = hmac.new(secret.encode(), (query + form).encode(), hashlib.sha256).hexdigest()
    sig = sig.upper() if upper else sig
    if sig_in_body or (form and not query):
        form = f"{form}&signature={sig}" if form else f"signature={sig}"
    else:
        query = f"{query}&signature={sig}" if query else f"signature={sig}"
    return query, form


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    query: str,
    body: str = "",
    key: str | None = DOC_KEY,
) -> httpx.Response:
    headers = {"X-MBX-APIKEY": key} if key is not None else {}
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    url = f"{path}?{query}" if query else path
    return await http.request(method, url, headers=headers, content=body.encode() or None)
