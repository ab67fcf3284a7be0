"""Live (non-paper) execution on Coinbase Advanced Trade, as real processes: the simulator
with Coinbase order entry (it verifies every request's ES256 JWT) and a trading worker
with ``market_data.exchange = "coinbase"`` and ``paper_trading: false``. On start it
reconciles: an order the topics say is only ACCEPTED, filled at the venue while we were
down, gets its FILLED event. Then a proposal is approved, sent once with a JWT, filled."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from algostream.execution.coinbase_client import (
    CoinbaseCredentials,
    CoinbaseNewOrder,
    CoinbaseRestClient,
)
from algostream.model import BookTop, OrderEvent, OrderRequest, OrderStatus, OrderType, Side
from tests.integration.streams.test_live_execution import wait_up
from tests.kafka_kit import decoded, free_port, produce, read_until

INSTRUMENT = "COINBASE:BTC-USDT"
KEY_NAME = "organizations/0c0ffee0-0000-4000-8000-000000000002/apiKeys/worker-key"


def private_key() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


def order(coid: str, mid: Decimal) -> OrderRequest:
    now = time.time_ns()
    return OrderRequest(
        instrument=INSTRUMENT, ts_event=now, ts_init=now, record_id=f"rec-{coid}",
        lineage_id="sig", account="paper", client_order_id=coid, strategy="test",
        side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal("0.01"), arrival_mid=mid,
    )  # fmt: skip


async def test_live_coinbase_reconciles_on_start_and_places_once(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    pem = private_key()
    creds = {"ALGOSTREAM_COINBASE_KEY_NAME": KEY_NAME, "ALGOSTREAM_COINBASE_PRIVATE_KEY": pem}
    supervisor.start("sim", "sim", "--port", str(port), "--rate", "20", env=creds)
    await wait_up(url)
    async with httpx.AsyncClient() as http:
        book = (await http.get(f"{url}/sim/book", params={"symbol": "BTCUSDT", "limit": 5})).json()
        client = CoinbaseRestClient(
            http, CoinbaseCredentials(key_name=KEY_NAME, private_key=pem), base_url=url
        )
        # placed before a crash: the venue filled it, the topics only saw ACCEPTED
        lost_order = CoinbaseNewOrder("BTC-USDT", Side.BUY, "MARKET", Decimal("0.01"), "cb-lost-1")
        await client.create_order(lost_order)
        bids = tuple((Decimal(p), Decimal(q)) for p, q in book["bids"])
        asks = tuple((Decimal(p), Decimal(q)) for p, q in book["asks"])
        mid = (bids[0][0] + asks[0][0]) / 2
        lost = order("cb-lost-1", mid)
        await produce(s, "orders.approved", [lost])
        accepted = OrderEvent(
            instrument=INSTRUMENT, ts_event=lost.ts_event, ts_init=lost.ts_init,
            record_id="ev-cb-lost-1-acc", lineage_id=lost.record_id, account="paper",
            client_order_id="cb-lost-1", status=OrderStatus.ACCEPTED, side=Side.BUY,
            order_type=OrderType.MARKET, quantity=Decimal("0.01"), venue="COINBASE",
        )  # fmt: skip
        await produce(s, "orders.events", [accepted])
        now = time.time_ns()
        top = BookTop(
            instrument=INSTRUMENT, ts_event=now, ts_init=now, record_id="cb-t1",
            lineage_id="md", bids=bids, asks=asks, best_bid=bids[0][0], best_ask=asks[0][0],
            mid=mid, update_id=1,
        )  # fmt: skip
        await produce(s, "book.top", [top])
        supervisor.start(
            "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
            env=creds | {
                "ALGOSTREAM__MARKET_DATA__EXCHANGE": "coinbase",
                "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",
                "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url,
            },
        )  # fmt: skip

        def filled(coid: str):  # type: ignore[no-untyped-def]
            def done(msgs) -> bool:  # type: ignore[no-untyped-def]
                return any(
                    e.client_order_id == coid and e.status is OrderStatus.FILLED  # type: ignore[attr-defined]
                    for e in decoded(msgs, OrderEvent)
                )

            return done

        events = decoded(await read_until(s, "orders.events", filled("cb-lost-1"), 90), OrderEvent)
        lost_events = [e for e in events if e.client_order_id == "cb-lost-1"]  # type: ignore[attr-defined]
        assert lost_events[-1].status is OrderStatus.FILLED, supervisor.tail("trading")  # type: ignore[attr-defined]
        assert "reconciled" in lost_events[-1].reason  # type: ignore[attr-defined]
        assert sum(e.fill_qty for e in lost_events) == Decimal("0.01")  # type: ignore[attr-defined]

        await produce(s, "orders.proposed", [order("cb-live-2", mid)])
        events = decoded(await read_until(s, "orders.events", filled("cb-live-2"), 90), OrderEvent)
        fills = [e for e in events if e.client_order_id == "cb-live-2" and e.fill_qty > 0]  # type: ignore[attr-defined]
        assert fills and all(e.venue == "COINBASE" for e in fills), supervisor.tail("trading")  # type: ignore[attr-defined]
        assert sum(e.fill_qty for e in fills) == Decimal("0.01")  # type: ignore[attr-defined]
        at_venue = await client.find_by_client_order_id("cb-live-2", "BTC-USDT")
        assert at_venue is not None and at_venue["status"] == "FILLED"
        placed = [o for o in await client.list_orders() if o["client_order_id"] == "cb-live-2"]
        assert len(placed) == 1  # sent once
