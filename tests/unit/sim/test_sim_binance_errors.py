"""Each kind of bad input gets exactly the status, code and message Binance documents, as
listed in algostream/sim/ERRORS.md (this test checks the table row by row), never a 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from trading_kit import DOC_KEY, TradingSim, call, signed, start_trading_sim

NOW = 1_700_000_000_000
TABLE = Path(__file__).resolve().parents[3] / "algostream" / "sim" / "ERRORS.md"
Params = list[tuple[str, str]]


@dataclass(frozen=True)
class Case:
    """One bad request and the row of ERRORS.md it must produce."""

    row: str  # a unique part of the row's condition
    method: str
    path: str
    params: Params = field(default_factory=list)
    signed: bool = True
    key: str | None = DOC_KEY
    ts_offset: int = 0
    secret: str | None = None


def order(**kw: str) -> Params:
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    base |= {"quantity": "0.01", "price": "20000.00"}
    base |= kw
    return [(k, v) for k, v in base.items() if v != "-"]


ORDER = "/api/v3/order"
CASES = [
    Case("not on the tick grid", "POST", ORDER, order(price="20000.005")),
    Case("below `minQty`", "POST", ORDER, order(quantity="0.000001")),
    Case("below `minNotional`", "POST", ORDER, order(quantity="0.0001", price="100.00")),
    Case("1 s or more ahead", "GET", "/api/v3/account", ts_offset=1000),
    Case("older than `recvWindow`", "GET", "/api/v3/account", ts_offset=-5001),
    Case("Signature wrong", "GET", "/api/v3/account", secret="not-the-secret"),
    Case("Symbol outside", "POST", ORDER, order(symbol="btcusdt")),
    Case("A number not", "POST", ORDER, order(quantity="1e3")),
    Case(
        "integer parameter", "GET", "/api/v3/depth", [("symbol", "BTCUSDT"), ("limit", "x")], False
    ),
    Case("A `newClientOrderId` outside", "POST", ORDER, order(newClientOrderId="bad id!")),
    Case("A zero quantity", "POST", ORDER, order(quantity="0")),
    Case("A mandatory parameter", "POST", ORDER, order(symbol="-")),
    Case(
        "without `quantity` or",
        "POST",
        ORDER,
        order(type="MARKET", quantity="-", price="-", timeInForce="-"),
    ),
    Case("without `orderId` or", "GET", ORDER, [("symbol", "BTCUSDT")]),
    Case("(`price` on MARKET)", "POST", ORDER, order(type="MARKET", timeInForce="-")),
    Case("More than 8 decimals", "POST", ORDER, order(quantity="0.010000001")),
    Case("`timeInForce` not", "POST", ORDER, order(timeInForce="GTX")),
    Case("Order `type` not", "POST", ORDER, order(type="STOP_MARKET")),
    Case("`side` not", "POST", ORDER, order(side="HOLD")),
    Case(
        "Kline `interval`",
        "GET",
        "/api/v3/klines",
        [("symbol", "BTCUSDT"), ("interval", "7m")],
        False,
    ),
    Case("not simulated", "GET", "/api/v3/ticker/price", [("symbol", "DOGEUSDT")], False),
    Case(
        "`listenKey` never issued", "PUT", "/api/v3/userDataStream", [("listenKey", "nope")], False
    ),
    Case(
        "window over one hour",
        "GET",
        "/api/v3/aggTrades",
        [("symbol", "BTCUSDT"), ("startTime", "0"), ("endTime", "3600001")],
        False,
    ),
    Case("`newOrderRespType` not", "POST", ORDER, order(newOrderRespType="ALL")),
    Case("`recvWindow` above", "GET", "/api/v3/account", [("recvWindow", "60001")]),
    Case("Not enough free balance", "POST", ORDER, order(side="SELL", quantity="100")),
    Case(
        "LIMIT_MAKER that",
        "POST",
        ORDER,
        order(type="LIMIT_MAKER", timeInForce="-", price="99999.00"),
    ),
    Case(
        "whose stop is already",
        "POST",
        ORDER,
        order(type="STOP_LOSS_LIMIT", side="SELL", stopPrice="99999.00"),
    ),
    Case("Cancel of an unknown", "DELETE", ORDER, [("symbol", "BTCUSDT"), ("orderId", "999")]),
    Case("Query of an unknown", "GET", ORDER, [("symbol", "BTCUSDT"), ("orderId", "999")]),
    Case("missing or not a printable", "GET", "/api/v3/account", key=None),
    Case("well formed but not", "GET", "/api/v3/account", key="someone-else"),
]


def table() -> list[tuple[str, int, int, str]]:
    """(condition, status, code, message) rows of ERRORS.md."""
    rows = []
    for line in TABLE.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and re.fullmatch(r"\d{3}", cells[1]):
            rows.append((cells[0], int(cells[1]), int(cells[2]), cells[3]))
    return rows


def row_for(case: Case) -> tuple[str, int, int, str]:
    found = [r for r in table() if case.row in r[0]]
    assert len(found) == 1, f"{case.row!r} names {len(found)} rows of ERRORS.md"
    return found[0]


@pytest.fixture
async def venue() -> AsyncIterator[TradingSim]:
    ts = await start_trading_sim(now_ms=NOW)
    yield ts
    await ts.server.stop()


async def send(http: httpx.AsyncClient, case: Case) -> httpx.Response:
    if not case.signed:
        return await http.request(
            case.method, case.path, params=case.params, headers={"X-MBX-APIKEY": DOC_KEY}
        )
    stamp = [("timestamp", str(NOW + case.ts_offset))]
    kwargs = {"secret": case.secret} if case.secret else {}
    query, body = signed([*case.params, *stamp], **kwargs)
    return await call(http, case.method, case.path, query, body, key=case.key)


@pytest.mark.parametrize("case", CASES, ids=[c.row for c in CASES])
async def test_bad_input_gets_the_documented_answer(venue: TradingSim, case: Case) -> None:
    _, status, code, message = row_for(case)
    async with httpx.AsyncClient(base_url=venue.url) as http:
        resp = await send(http, case)
    assert (resp.status_code, resp.json()) == (status, {"code": code, "msg": message})
    assert resp.headers["X-MBX-USED-WEIGHT-1M"].isdigit()
    assert venue.sim.ledger == []


async def test_weight_limit_then_back_off_then_ban(venue: TradingSim) -> None:
    rows = {r[0]: r for r in table()}
    over, ignored, banned = (
        next(r for c, r in rows.items() if c.startswith(prefix))
        for prefix in ("Request weight over", "Still sending", "Third request")
    )
    async with httpx.AsyncClient(base_url=venue.url) as http:
        big = {"symbol": "BTCUSDT", "limit": "5000"}  # weight 250: 24 fit in 6,000
        answers = [await http.get("/api/v3/depth", params=big) for _ in range(25)]
        after = [await http.get("/api/v3/ping") for _ in range(4)]
    assert [r.status_code for r in answers[:24]] == [200] * 24
    assert answers[23].headers["X-MBX-USED-WEIGHT-1M"] == "6000"
    limited = answers[24]
    assert (limited.status_code, limited.json()["code"], limited.json()["msg"]) == over[1:]
    assert int(limited.headers["Retry-After"]) > 0
    assert [(r.status_code, r.json()["msg"]) for r in after[:2]] == [(ignored[1], ignored[3])] * 2
    ban_msg = re.escape(banned[3]).replace(re.escape("`<ms>`"), r"\d+")
    for r in after[2:]:
        assert r.status_code == banned[1] and re.fullmatch(ban_msg, r.json()["msg"])


async def test_more_than_100_orders_in_10_seconds(venue: TradingSim) -> None:
    row = next(r for r in table() if r[0].startswith("More than 100 new orders"))
    stamp = [("timestamp", str(NOW))]
    async with httpx.AsyncClient(base_url=venue.url) as http:
        answers = [
            await call(http, "POST", ORDER, *signed([*order(quantity="0.001"), *stamp]))
            for _ in range(101)
        ]
    assert [r.status_code for r in answers[:100]] == [200] * 100
    counts = [int(r.headers["X-MBX-ORDER-COUNT-10S"]) for r in answers[:100]]
    assert counts == list(range(1, 101)) and answers[99].headers["X-MBX-ORDER-COUNT-1D"] == "100"
    assert (answers[100].status_code, answers[100].json()["code"]) == row[1:3]
    assert answers[100].json()["msg"] == row[3]


async def test_duplicate_of_an_open_order(venue: TradingSim) -> None:
    row = next(r for r in table() if "still open" in r[0])
    params = [*order(newClientOrderId="dup-1"), ("timestamp", str(NOW))]
    async with httpx.AsyncClient(base_url=venue.url) as http:
        first = await call(http, "POST", ORDER, *signed(params))
        again = await call(http, "POST", ORDER, *signed(params))
    assert first.status_code == 200 and first.json()["status"] == "NEW"
    assert (again.status_code, again.json()) == (row[1], {"code": row[2], "msg": row[3]})


def test_every_row_of_the_table_is_tested() -> None:
    tested = {row_for(c)[0] for c in CASES}
    special = (
        "Request weight over",
        "Still sending",
        "Third request",
        "More than 100",
        "still open",
    )
    untested = [r[0] for r in table() if r[0] not in tested and not r[0].startswith(special)]
    untested = [c for c in untested if not any(s in c for s in special)]
    assert untested == [] and len(table()) == len(CASES) + len(special)
    assert all(Decimal(r[2]) < 0 and r[1] in (400, 401, 418, 429) for r in table())


GARBAGE = [
    ("POST", ORDER, "", b"\xff\xfe\x00not utf-8", {"Content-Type": "application/octet-stream"}),
    ("POST", ORDER, "", b'{"symbol": "BTCUSDT"}', {"Content-Type": "application/json"}),
    ("POST", ORDER, "symbol=BTCUSDT&symbol=ETHUSDT&signature=", b"", {}),
    ("GET", "/api/v3/account", "timestamp=" + "9" * 40 + "&signature=00", b"", {}),
    ("GET", "/api/v3/depth", "symbol=BTCUSDT&limit=" + "9" * 30, b"", {}),
    ("GET", "/api/v3/klines", "symbol=BTCUSDT&interval=1m&startTime=-5", b"", {}),
    ("GET", "/api/v3/ticker/price", "symbols=%5B1%2C2%5D", b"", {}),
    ("GET", "/api/v3/exchangeInfo", "symbols=not-json", b"", {}),
    (
        "PUT",
        "/api/v3/userDataStream",
        "",
        b"\xff",
        {"Content-Type": "application/x-www-form-urlencoded"},
    ),
    ("DELETE", "/api/v3/openOrders", "signature=zz&timestamp=1", b"", {}),
]


@pytest.mark.parametrize(("method", "path", "query", "body", "headers"), GARBAGE)
async def test_garbage_never_gets_a_500(
    venue: TradingSim, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=venue.url) as http:
        resp = await http.request(
            method,
            f"{path}?{query}" if query else path,
            content=body or None,
            headers={"X-MBX-APIKEY": DOC_KEY, **headers},
        )
    assert 400 <= resp.status_code < 500, resp.text
    assert isinstance(resp.json()["code"], int) and resp.json()["msg"]
