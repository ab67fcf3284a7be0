"""Live (non-paper) USD-M futures execution, as real processes: the simulator's signed
``/fapi/v1/order`` and a trading worker with ``market_data.exchange = "binance_usdm"``
and ``paper_trading: false``. On start it reconciles orders (a short filled at the venue
while we were down, ACCEPTED on the topics, gets its FILLED event) and positions (the
venue's short, which the topics' fills did not make, is reported); then a proposal to
sell from flat is approved by the futures checks, sent once and filled: a short."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from algostream.config import load_settings
from algostream.execution.usdm_client import UsdmNewOrder, UsdmRestClient
from algostream.model import BookTop, OrderEvent, OrderRequest, OrderStatus, OrderType, Side
from tests.integration.streams.test_live_execution import KEY, SECRET, wait_up
from tests.kafka_kit import decoded, free_port, produce, read_until

PERP = "BINANCE_USDM:BTCUSDT"


def order(coid: str, mid: Decimal) -> OrderRequest:
    now = time.time_ns()
    return OrderRequest(
        instrument=PERP, ts_event=now, ts_init=now, record_id=f"rec-{coid}", lineage_id="sig",
        account="paper", client_order_id=coid, strategy="test", side=Side.SELL,
        order_type=OrderType.MARKET, quantity=Decimal("0.01"), arrival_mid=mid,
    )  # fmt: skip


async def test_live_usdm_reconciles_orders_and_positions_then_shorts(
    provisioned, supervisor, kafka_env
) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    creds = {"ALGOSTREAM_API_KEY": KEY, "ALGOSTREAM_API_SECRET": SECRET}
    supervisor.start("sim", "sim", "--port", str(port), "--rate", "20", env=creds)
    await wait_up(url)
    live = load_settings(env=kafka_env | creds | {"ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url})
    async with httpx.AsyncClient() as http:
        book = (await http.get(f"{url}/sim/book", params={"symbol": "BTCUSDT", "limit": 5})).json()
        client = UsdmRestClient.from_config(http, live.execution)
        assert isinstance(client, UsdmRestClient)
        lost_new = UsdmNewOrder("BTCUSDT", Side.SELL, OrderType.MARKET, Decimal("0.01"), "u-lost")
        await client.new_order(lost_new)  # placed before a crash
        bids = tuple((Decimal(p), Decimal(q)) for p, q in book["bids"])
        asks = tuple((Decimal(p), Decimal(q)) for p, q in book["asks"])
        mid = (bids[0][0] + asks[0][0]) / 2
        lost = order("u-lost", mid)
        await produce(s, "orders.approved", [lost])
        accepted = OrderEvent(
            instrument=PERP, ts_event=lost.ts_event, ts_init=lost.ts_init,
            record_id="ev-u-lost-acc", lineage_id=lost.record_id, account="paper",
            client_order_id="u-lost", status=OrderStatus.ACCEPTED, side=Side.SELL,
            order_type=OrderType.MARKET, quantity=Decimal("0.01"), venue="BINANCE_USDM",
        )  # fmt: skip
        await produce(s, "orders.events", [accepted])
        now = time.time_ns()
        top = BookTop(
            instrument=PERP, ts_event=now, ts_init=now, record_id="u-t1", lineage_id="md",
            bids=bids, asks=asks, best_bid=bids[0][0], best_ask=asks[0][0], mid=mid,
            update_id=1,
        )  # fmt: skip
        await produce(s, "book.top", [top])
        supervisor.start(
            "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
            env=creds | {
                "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
                "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
                "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",
                "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url,
                "ALGOSTREAM__RISK__LEVERAGE": "5",
            },
        )  # fmt: skip

        def filled(coid: str):  # type: ignore[no-untyped-def]
            def done(msgs) -> bool:  # type: ignore[no-untyped-def]
                return any(
                    e.client_order_id == coid and e.status is OrderStatus.FILLED  # type: ignore[attr-defined]
                    for e in decoded(msgs, OrderEvent)
                )

            return done

        events = decoded(await read_until(s, "orders.events", filled("u-lost"), 90), OrderEvent)
        lost_events = [e for e in events if e.client_order_id == "u-lost"]  # type: ignore[attr-defined]
        assert lost_events[-1].status is OrderStatus.FILLED, supervisor.tail("trading")  # type: ignore[attr-defined]
        assert "reconciled" in lost_events[-1].reason  # type: ignore[attr-defined]
        log = supervisor.tail("trading", 400)
        assert "position differs at the venue" in log and "-0.01" in log, log

        await produce(s, "orders.proposed", [order("u-live", mid)])
        events = decoded(await read_until(s, "orders.events", filled("u-live"), 90), OrderEvent)
        fills = [e for e in events if e.client_order_id == "u-live" and e.fill_qty > 0]  # type: ignore[attr-defined]
        assert fills and all(e.side is Side.SELL for e in fills), supervisor.tail("trading")  # type: ignore[attr-defined]
        assert sum(e.fill_qty for e in fills) == Decimal("0.01")  # type: ignore[attr-defined]
        assert await client.positions("BTCUSDT") == {"BTCUSDT": Decimal("-0.02")}
        leverage = await client._call("GET", "/fapi/v2/positionRisk", [], signed=True)
        assert [int(r["leverage"]) for r in leverage if r["symbol"] == "BTCUSDT"] == [5]
