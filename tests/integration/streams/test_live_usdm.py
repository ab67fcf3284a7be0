"""Live (non-paper) USD-M futures execution, as real processes: the simulator's signed
``/fapi/v1/order`` and user data stream, and a trading worker with
``market_data.exchange = "binance_usdm"`` and ``paper_trading: false``.

* On start it reconciles orders (a short filled at the venue while we were down, ACCEPTED
  on the topics, gets its FILLED event) and positions: a short traded by hand at the
  venue, which no fill on the topics makes, is adopted with a ``POSITION_ADOPTED`` record
  on ``orders.events`` (``risk.position_mismatch: adopt``), and so is one traded by hand
  while it runs (its ``ACCOUNT_UPDATE``); with ``halt`` and the
  difference above the tolerance, trading halts instead (a ``risk.events`` record; the
  risk gate refuses every proposal naming the mismatch) until the operator's signed
  ``algostream control resume``, after which orders are sent again.
* Orders: a proposal to sell from flat is approved by the futures checks, sent once and
  filled; a resting LIMIT filled later at the venue arrives on the user data stream
  (``ORDER_TRADE_UPDATE``: an exact fill with its commission, not a REST catch-up), and
  after the venue drops the connection and expires the key the worker is back on a new
  key; every order's fills add up to its quantity exactly once. An event type the stream
  does not know goes to ``dlq`` naming it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx

from algostream.config import load_settings
from algostream.execution.usdm_client import UsdmNewOrder, UsdmRestClient
from algostream.model import (
    BookTop,
    DeadLetter,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    OrderStatus,
    OrderType,
    RiskEvent,
    Side,
    TradingState,
)
from tests.faults.test_control_auth import decision
from tests.integration.streams.test_live_execution import KEY, SECRET, wait_up
from tests.kafka_kit import decoded, free_port, produce, read_until

PERP = "BINANCE_USDM:BTCUSDT"
CREDS = {"ALGOSTREAM_API_KEY": KEY, "ALGOSTREAM_API_SECRET": SECRET}
CONTROL_KEY = "usdm-operator-key-0123456789abcdef0123456789abcdef"


def order(
    coid: str, mid: Decimal, *, limit: Decimal | None = None, qty: str = "0.01"
) -> OrderRequest:
    now = time.time_ns()
    return OrderRequest(
        instrument=PERP, ts_event=now, ts_init=now, record_id=f"rec-{coid}", lineage_id="sig",
        account="paper", client_order_id=coid, strategy="test", side=Side.SELL,
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=limit, quantity=Decimal(qty), arrival_mid=mid,
    )  # fmt: skip


def worker_env(url: str, **risk: str) -> dict[str, str]:
    return (
        CREDS
        | {
            "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
            "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
            "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",
            "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url,
            "ALGOSTREAM__RISK__LEVERAGE": "5",
        }
        | {f"ALGOSTREAM__RISK__{k.upper()}": v for k, v in risk.items()}
    )


def has(check: Callable[[OrderEvent], bool]) -> Callable[[list[Any]], bool]:
    def done(msgs: list[Any]) -> bool:
        return any(check(e) for e in decoded(msgs, OrderEvent))  # type: ignore[arg-type]

    return done


def status_of(coid: str, status: OrderStatus) -> Callable[[list[Any]], bool]:
    return has(lambda e: e.client_order_id == coid and e.status is status)


async def sim_stats(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
    return dict((await http.get(f"{url}/sim/stats")).json())


async def until_stats(
    http: httpx.AsyncClient, url: str, check: Callable[[dict[str, Any]], bool], what: str
) -> None:
    deadline = time.monotonic() + 60
    while not check(await sim_stats(http, url)):
        assert time.monotonic() < deadline, what
        await __import__("asyncio").sleep(0.1)  # poll interval under the deadline


async def start_venue(supervisor, s, http: httpx.AsyncClient):  # type: ignore[no-untyped-def]
    """The simulator (a static book: rate 0) and its top on ``book.top``."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    supervisor.start("sim", "sim", "--port", str(port), "--rate", "0", env=CREDS)
    await wait_up(url)
    book = (await http.get(f"{url}/sim/book", params={"symbol": "BTCUSDT", "limit": 5})).json()
    bids = tuple((Decimal(p), Decimal(q)) for p, q in book["bids"])
    asks = tuple((Decimal(p), Decimal(q)) for p, q in book["asks"])
    mid = (bids[0][0] + asks[0][0]) / 2
    now = time.time_ns()
    top = BookTop(
        instrument=PERP, ts_event=now, ts_init=now, record_id="u-t1", lineage_id="md",
        bids=bids, asks=asks, best_bid=bids[0][0], best_ask=asks[0][0], mid=mid, update_id=1,
    )  # fmt: skip
    await produce(s, "book.top", [top])
    return url, mid, asks[0][0]


async def test_live_usdm_adopts_venue_positions_and_reads_the_user_stream(
    provisioned, supervisor, kafka_env
) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    async with httpx.AsyncClient() as http:
        url, mid, ask = await start_venue(supervisor, s, http)
        live = load_settings(
            env=kafka_env | CREDS | {"ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url}
        )
        client = UsdmRestClient.from_config(http, live.execution)
        assert isinstance(client, UsdmRestClient)
        sell = Decimal("0.01")
        await client.new_order(UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.MARKET, sell, "u-lost"))
        await client.new_order(UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.MARKET, sell, "u-hand"))
        lost = order("u-lost", mid)
        await produce(s, "orders.approved", [lost])
        accepted = OrderEvent(
            instrument=PERP, ts_event=lost.ts_event, ts_init=lost.ts_init,
            record_id="ev-u-lost-acc", lineage_id=lost.record_id, account="paper",
            client_order_id="u-lost", status=OrderStatus.ACCEPTED, side=Side.SELL,
            order_type=OrderType.MARKET, quantity=sell, venue="BINANCE_USDM",
        )  # fmt: skip
        await produce(s, "orders.events", [accepted])
        supervisor.start(
            "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
            env=worker_env(url),
        )  # fmt: skip

        adopted = has(lambda e: e.reason.startswith("POSITION_ADOPTED"))
        msgs = await read_until(
            s, "orders.events", lambda m: status_of("u-lost", OrderStatus.FILLED)(m) and adopted(m),
            90,
        )  # fmt: skip
        events: list[OrderEvent] = decoded(msgs, OrderEvent)  # type: ignore[assignment]
        assert "reconciled" in [e for e in events if e.client_order_id == "u-lost"][-1].reason
        (adopt,) = [e for e in events if e.reason.startswith("POSITION_ADOPTED")]
        # the hand-made short: the ledger had -0.01 (u-lost), the venue -0.02
        assert (adopt.side, adopt.fill_qty, adopt.status) == (Side.SELL, sell, OrderStatus.FILLED)
        assert adopt.fill_price is not None and adopt.fill_price > 0
        log = supervisor.tail("trading", 400)
        assert "position differs at the venue" in log and '"theirs":"-0.02"' in log, log
        assert '"ours":"-0.01"' in log and '"action":"adopted"' in log, log

        # the user data stream is up (the only /fstream connection here: no ingestor)
        await until_stats(http, url, lambda st: st["usdm_clients"] == 1, "user stream")
        # traded by hand while running: its ACCOUNT_UPDATE differs from the ledger, adopted
        await client.new_order(UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.MARKET, sell, "u-h2"))

        def adopted_twice(msgs: list[Any]) -> bool:
            return (
                sum(e.reason.startswith("POSITION_ADOPTED") for e in decoded(msgs, OrderEvent)) == 2
            )  # type: ignore[attr-defined]

        msgs = await read_until(s, "orders.events", adopted_twice, 60)
        again = [e for e in decoded(msgs, OrderEvent) if e.reason.startswith("POSITION_ADOPTED")]  # type: ignore[attr-defined]
        assert (again[-1].side, again[-1].fill_qty, again[-1].venue) == (
            Side.SELL,
            sell,
            "BINANCE_USDM",
        )  # type: ignore[attr-defined]
        log = supervisor.tail("trading", 400)
        assert "account update: position differs at the venue" in log, log
        assert '"theirs":"-0.03"' in log, log
        await produce(s, "orders.proposed", [order("u-live", mid)])
        await read_until(s, "orders.events", status_of("u-live", OrderStatus.FILLED), 90)

        # a resting LIMIT at the ask, filled later at the venue: learnt from the stream
        await produce(s, "orders.proposed", [order("u-rest", mid, limit=ask)])
        await read_until(s, "orders.events", status_of("u-rest", OrderStatus.ACCEPTED), 60)
        assert (await http.post(f"{url}/sim/fault", json={"kind": "crossed"})).status_code == 200
        msgs = await read_until(s, "orders.events", status_of("u-rest", OrderStatus.FILLED), 60)
        (rest,) = [e for e in decoded(msgs, OrderEvent) if e.client_order_id == "u-rest"  # type: ignore[attr-defined]
                   and e.fill_qty > 0]  # fmt: skip
        assert rest.reason == "", rest  # an exact fill from ORDER_TRADE_UPDATE, not a catch-up
        assert rest.fee > 0 and rest.fee_currency == "USDT"

        # the venue drops the connection and expires the key: back on a new key
        await http.post(f"{url}/sim/fault", json={"kind": "disconnect", "abrupt": True})
        expired = await http.post(f"{url}/sim/fault", json={"kind": "expire_listen_keys"})
        assert expired.status_code == 200
        await until_stats(
            http, url, lambda st: st["usdm_clients"] == 1 and st["listen_keys"] == 1, "reconnect"
        )
        # an event type the stream does not know: dlq, naming it; the stream goes on
        odd = {"kind": "user_event", "event": {"e": "NEW_THING", "E": 1}}
        assert (await http.post(f"{url}/sim/fault", json=odd)).json()["keys"] == 1

        def dead(msgs: list[Any]) -> bool:
            return any("'NEW_THING'" in d.reason for d in decoded(msgs, DeadLetter))  # type: ignore[attr-defined]

        (letter,) = [d for d in decoded(await read_until(s, "dlq", dead, 60), DeadLetter)
                     if "'NEW_THING'" in d.reason]  # type: ignore[attr-defined]  # fmt: skip
        assert letter.source_topic == "user_stream:binance_usdm", letter  # type: ignore[attr-defined]
        assert "unknown on the USD-M stream" in letter.reason  # type: ignore[attr-defined]
        await produce(s, "orders.proposed", [order("u-after", mid)])
        msgs = await read_until(s, "orders.events", status_of("u-after", OrderStatus.FILLED), 90)
        events = decoded(msgs, OrderEvent)  # type: ignore[assignment]
        # every record of the USD-M path carries its venue (reconciled, streamed, adopted)
        assert {e.venue for e in events} == {"BINANCE_USDM"}, {e.venue for e in events}  # type: ignore[attr-defined]
        for coid in ("u-lost", "u-live", "u-rest", "u-after"):  # every fill exactly once
            filled = sum(e.fill_qty for e in events if e.client_order_id == coid)
            assert filled == sell, (coid, [e for e in events if e.client_order_id == coid])
        assert await client.positions("BTCUSDT") == {"BTCUSDT": Decimal("-0.06")}
        leverage = await client._call("GET", "/fapi/v2/positionRisk", [], signed=True)
        assert [int(r["leverage"]) for r in leverage if r["symbol"] == "BTCUSDT"] == [5]


async def test_live_usdm_halts_on_a_position_mismatch_above_the_tolerance(
    provisioned, supervisor, kafka_env
) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    async with httpx.AsyncClient() as http:
        url, mid, _ = await start_venue(supervisor, s, http)
        live = load_settings(
            env=kafka_env | CREDS | {"ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url}
        )
        client = UsdmRestClient.from_config(http, live.execution)
        assert isinstance(client, UsdmRestClient)
        big = UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.05"), "u-hand")
        await client.new_order(big)  # traded by hand: the ledger knows nothing of it
        supervisor.start(
            "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
            env=worker_env(url, position_mismatch="halt", position_mismatch_tolerance="0.01")
            | {"ALGOSTREAM_CONTROL_KEY": CONTROL_KEY},
        )  # fmt: skip

        def halted(msgs: list[Any]) -> bool:
            return any(
                r.state is TradingState.HALTED and r.reason.startswith("POSITION_MISMATCH")
                for r in decoded(msgs, RiskEvent)  # type: ignore[attr-defined]
            )

        msgs = await read_until(s, "risk.events", halted, 90)
        (halt,) = [r for r in decoded(msgs, RiskEvent) if r.actor == "reconciliation"]  # type: ignore[attr-defined]
        assert "ours 0 venue -0.05" in halt.reason, halt  # type: ignore[attr-defined]
        # the risk gate knows the halt: it refuses the proposal, naming the mismatch
        await produce(s, "orders.proposed", [order("u-refused", mid)])
        refused = await decision(s, "u-refused")
        assert isinstance(refused, OrderRejected) and refused.reason == "TRADING_HALTED"
        assert "POSITION_MISMATCH" in refused.message and "venue -0.05" in refused.message
        msgs = await read_until(s, "orders.events", lambda m: False, 0.5)
        assert not any(e.reason.startswith("POSITION_ADOPTED") for e in decoded(msgs, OrderEvent))  # type: ignore[attr-defined]
        assert await client.positions("BTCUSDT") == {"BTCUSDT": Decimal("-0.05")}  # nothing sent
        assert '"action":"halt"' in supervisor.tail("trading", 400)

        # the operator's signed RESUME lifts it (no restart): the next order is sent
        resume = subprocess.run(
            [sys.executable, "-m", "algostream", "control", "resume", "--reason", "checked"],
            env={**os.environ, **kafka_env, "ALGOSTREAM_CONTROL_KEY": CONTROL_KEY},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert resume.returncode == 0, resume.stdout + resume.stderr

        def lifted(msgs: list[Any]) -> bool:
            return any(
                r.detail.get("layer") == "reconciliation" and r.state is TradingState.ACTIVE
                for r in decoded(msgs, RiskEvent)  # type: ignore[attr-defined]
            )

        await read_until(s, "risk.events", lifted, 60)
        await produce(s, "orders.proposed", [order("u-resumed", mid)])
        await read_until(s, "orders.events", status_of("u-resumed", OrderStatus.FILLED), 90)
