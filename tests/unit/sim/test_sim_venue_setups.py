"""The simulator with futures trading and Coinbase order entry mounted (as ``algostream
sim`` does when the keys are in the environment), traded by the platform's clients
against the synthetic market over real sockets."""

from __future__ import annotations

import random
from decimal import Decimal

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from algostream.execution.binance_client import BinanceCredentials
from algostream.execution.coinbase_client import (
    CoinbaseCredentials,
    CoinbaseNewOrder,
    CoinbaseRestClient,
)
from algostream.execution.retry import RetryPolicy
from algostream.execution.usdm_client import UsdmNewOrder, UsdmRestClient
from algostream.model import OrderType, Side
from algostream.sim import SimExchange, SimMarket, SimServer
from algostream.sim.coinbase_trading import coinbase_trading_setup, public_key_of
from algostream.sim.usdm_trading import usdm_trading_setup

KEY, SECRET = "sim-key-0123456789", "sim-secret-0123456789"
CB_NAME = "organizations/o/apiKeys/sim"


async def test_futures_and_coinbase_orders_on_the_synthetic_market() -> None:
    private = (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        .decode()
    )
    setup = [
        usdm_trading_setup(KEY, SECRET),
        coinbase_trading_setup(CB_NAME, public_key_of(private)),
    ]
    server = SimServer(SimExchange(SimMarket.create(["BTCUSDT"], 3), rate=50), setup=setup)
    await server.start()
    try:
        async with httpx.AsyncClient() as http:
            retry = RetryPolicy(attempts=1, base_delay_s=0.01)
            creds = BinanceCredentials(api_key=KEY, api_secret=SECRET)
            fut = UsdmRestClient(
                http, creds, base_url=server.http_url, retry=retry, rng=random.Random(1)
            )
            sold = await fut.new_order(
                UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"), "fs1")
            )
            assert sold["status"] == "FILLED"
            assert await fut.positions("BTCUSDT") == {"BTCUSDT": Decimal("-0.01")}
            cb_creds = CoinbaseCredentials(key_name=CB_NAME, private_key=private)
            cb = CoinbaseRestClient(http, cb_creds, base_url=server.http_url, retry=retry)
            bought = await cb.create_order(
                CoinbaseNewOrder("BTC-USDT", Side.BUY, "MARKET", Decimal("0.01"), "cb1")
            )
            assert bought["status"] == "FILLED" and bought["product_id"] == "BTC-USDT"
    finally:
        await server.stop()
