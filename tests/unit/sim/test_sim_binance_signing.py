"""Signed requests as Binance takes them: the documented examples, query/body/both, hex case."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from trading_kit import (
    DOC_KEY,
    DOC_SECRET,
    DOC_TIMESTAMP,
    TradingSim,
    call,
    ltcbtc_spec,
    signed,
    start_trading_sim,
)

from algostream.execution.binance_client import sign
from algostream.sim import SimMarket
from algostream.sim.signing import expected_signature

ORDER = [("symbol", "LTCBTC"), ("side", "BUY"), ("type", "LIMIT"), ("timeInForce", "GTC")]
REST = [("quantity", "1"), ("price", "0.1"), ("recvWindow", "5000")]
STAMP = [("timestamp", str(DOC_TIMESTAMP))]
DOC_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
DOC_BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
SIG_ONE_PLACE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
SIG_MIXED = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


@pytest.fixture
async def venue() -> AsyncIterator[TradingSim]:
    market = SimMarket([ltcbtc_spec()], seed=3, levels=20)
    ts = await start_trading_sim(
        market=market, balances={"BTC": 10, "LTC": 0}, now_ms=DOC_TIMESTAMP + 100
    )
    yield ts
    await ts.server.stop()


def test_documented_signatures_are_what_both_sides_compute() -> None:
    assert expected_signature(DOC_SECRET, DOC_QUERY + "&" + DOC_BODY, "") == SIG_ONE_PLACE
    assert expected_signature(DOC_SECRET, "", DOC_QUERY + "&" + DOC_BODY) == SIG_ONE_PLACE
    assert expected_signature(DOC_SECRET, DOC_QUERY, DOC_BODY) == SIG_MIXED
    assert sign(DOC_SECRET, DOC_QUERY + DOC_BODY) == SIG_MIXED


@pytest.mark.parametrize(
    ("where", "signature"),
    [("query", SIG_ONE_PLACE), ("body", SIG_ONE_PLACE), ("both", SIG_MIXED)],
)
async def test_documented_examples_are_accepted(
    venue: TradingSim, where: str, signature: str
) -> None:
    """The exact curl examples of Binance's docs (signature last, in the body or query)."""
    query = {"query": f"{DOC_QUERY}&{DOC_BODY}&signature={signature}", "body": ""}.get(where, "")
    body = {
        "body": f"{DOC_QUERY}&{DOC_BODY}&signature={signature}",
        "both": f"{DOC_BODY}&signature={signature}",
    }.get(where, "")
    if where == "both":
        query = DOC_QUERY
    async with httpx.AsyncClient(base_url=venue.url) as http:
        resp = await call(http, "POST", "/api/v3/order", query, body)
    assert resp.status_code == 200, resp.text
    assert resp.json()["symbol"] == "LTCBTC" and resp.json()["type"] == "LIMIT"


async def test_upper_case_hex_and_signature_anywhere_are_accepted(venue: TradingSim) -> None:
    async with httpx.AsyncClient(base_url=venue.url) as http:
        upper = await call(http, "GET", "/api/v3/account", *signed(STAMP, upper=True))
        in_body = await call(
            http, "POST", "/api/v3/order", *signed(ORDER, body=REST + STAMP, sig_in_body=True)
        )
        in_query = await call(http, "POST", "/api/v3/order", *signed(ORDER, body=REST + STAMP))
    assert [r.status_code for r in (upper, in_body, in_query)] == [200, 200, 200]


async def test_query_value_wins_over_body_value(venue: TradingSim) -> None:
    """Binance: a parameter sent in both takes the query string's value."""
    params = [*ORDER, ("newClientOrderId", "from-query")]
    async with httpx.AsyncClient(base_url=venue.url) as http:
        query, body = signed(params, body=[*REST, ("newClientOrderId", "from-body"), *STAMP])
        resp = await call(http, "POST", "/api/v3/order", query, body)
    assert resp.json()["clientOrderId"] == "from-query"


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda q, b: (q.replace("BUY", "SELL"), b), -1022),  # query changed after signing
        (lambda q, b: (q, b.replace("quantity=1", "quantity=2")), -1022),  # body changed
        (lambda q, b: (q + b, ""), -1022),  # body moved into the query: no "&" was signed
        (lambda q, b: (q.split("&signature=")[0], b), -1102),  # no signature at all
    ],
)
async def test_tampering_is_refused(venue: TradingSim, mutate: object, code: int) -> None:
    query, body = signed(ORDER, body=REST + STAMP, sig_in_body=False)
    query, body = mutate(query, body)  # type: ignore[operator]
    async with httpx.AsyncClient(base_url=venue.url) as http:
        resp = await call(http, "POST", "/api/v3/order", query, body)
    assert (resp.status_code, resp.json()["code"]) == (400, code)
    assert venue.sim.ledger == []


async def test_api_key_missing_malformed_or_unknown(venue: TradingSim) -> None:
    query, _ = signed(STAMP)
    async with httpx.AsyncClient(base_url=venue.url) as http:
        missing = await call(http, "GET", "/api/v3/account", query, key=None)
        malformed = await call(http, "GET", "/api/v3/account", query, key="has space")
        unknown = await call(http, "GET", "/api/v3/account", query, key=DOC_KEY[::-1])
    assert [(r.status_code, r.json()["code"]) for r in (missing, malformed, unknown)] == [
        (401, -2014),
        (401, -2014),
        (401, -2015),
    ]
