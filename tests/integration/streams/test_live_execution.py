"""Live (non-paper) execution against the simulator's signed Binance order API.

The trading worker runs with ``paper_trading: false``. On start it reconciles: an order
the topics say is only ACCEPTED, but which the venue filled while we were down, gets its
FILLED event. Then a new proposal is approved, sent once, signed, and filled by the venue.
"""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from algostream.config import load_settings
from algostream.execution.binance_client import BinanceRestClient, NewOrder
from algostream.model import BookTop, OrderEvent, OrderRequest, OrderStatus, OrderType, Side
from tests.kafka_kit import decoded, free_port, produce, read_until

KEY, SECRET = "sim-key-4b1f7", "sim-secret-8c2e90aa"


async def wait_up(url: str) -> None:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as http:
        while True:
            try:
                if (await http.get(f"{url}/api/v3/ping")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "simulator did not start"
            await __import__("asyncio").sleep(0.1)  # poll interval under the deadline


def order(coid: str, n: int, mid: Decimal) -> OrderRequest:
    now = time.time_ns()
    return OrderRequest(
        instrument="BINANCE:BTCUSDT",
        ts_event=now,
        ts_init=now,
        record_id=f"rec-{coid}",
        lineage_id=f"sig-{n}",
        account="paper",
        client_order_id=coid,
        strategy="test",
        side=Side.BUY,
        order_type=OrderType.MARKET,
        quantity="0.01",
        arrival_mid=mid,
    )


async def test_live_mode_reconciles_on_start_and_places_once(
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
        client = BinanceRestClient.from_config(http, live.execution)
        # placed before a crash: the venue filled it, the topics only saw ACCEPTED
        await client.new_order(
            NewOrder("BTCUSDT", Side.BUY, OrderType.MARKET, Decimal("0.01"), "lost-1")
        )
        bids = tuple((Decimal(p), Decimal(q)) for p, q in book["bids"])
        asks = tuple((Decimal(p), Decimal(q)) for p, q in book["asks"])
        mid = (bids[0][0] + asks[0][0]) / 2
        lost = order("lost-1", 0, mid)
        await produce(s, "orders.approved", [lost])
        accepted = OrderEvent(
            instrument=lost.instrument,
            ts_event=lost.ts_event,
            ts_init=lost.ts_init,
            record_id="ev-lost-1-acc",
            lineage_id=lost.record_id,
            account="paper",
            client_order_id="lost-1",
            status=OrderStatus.ACCEPTED,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            quantity="0.01",
            venue="BINANCE",
        )
        await produce(s, "orders.events", [accepted])
        now = time.time_ns()
        top = BookTop(
            instrument="BINANCE:BTCUSDT",
            ts_event=now,
            ts_init=now,
            record_id="t1",
            lineage_id="md",
            bids=bids,
            asks=asks,
            best_bid=bids[0][0],
            best_ask=asks[0][0],
            mid=mid,
            update_id=1,
        )
        await produce(s, "book.top", [top])
        supervisor.start(
            "trading",
            "worker",
            "trading",
            "--web-port",
            "0",
            "--metrics-port",
            "0",
            env=creds
            | {
                "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",
                "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url,
            },
        )

        def filled(coids: set[str]):  # type: ignore[no-untyped-def]
            def done(msgs) -> bool:  # type: ignore[no-untyped-def]
                got = {
                    e.client_order_id
                    for e in decoded(msgs, OrderEvent)  # type: ignore[attr-defined]
                    if e.status is OrderStatus.FILLED
                }  # type: ignore[attr-defined]
                return coids <= got

            return done

        events = decoded(await read_until(s, "orders.events", filled({"lost-1"}), 90), OrderEvent)
        lost_events = [e for e in events if e.client_order_id == "lost-1"]  # type: ignore[attr-defined]
        assert lost_events[-1].status is OrderStatus.FILLED, supervisor.tail("trading")  # type: ignore[attr-defined]
        assert "reconciled" in lost_events[-1].reason  # type: ignore[attr-defined]
        assert sum(e.fill_qty for e in lost_events) == Decimal("0.01")  # type: ignore[attr-defined]

        # a new proposal: approved by risk, placed once at the venue, filled there
        await produce(s, "orders.proposed", [order("live-2", 2, mid)])
        events = decoded(await read_until(s, "orders.events", filled({"live-2"}), 90), OrderEvent)
        live_fills = [e for e in events if e.client_order_id == "live-2" and e.fill_qty > 0]  # type: ignore[attr-defined]
        assert live_fills and all(e.venue == "BINANCE" for e in live_fills), supervisor.tail(
            "trading"
        )  # type: ignore[attr-defined]
        assert sum(e.fill_qty for e in live_fills) == Decimal("0.01")  # type: ignore[attr-defined]
        venue_view = await client.query_order("BTCUSDT", "live-2")
        assert venue_view is not None and venue_view["status"] == "FILLED"
        assert Decimal(venue_view["executedQty"]) == Decimal("0.01")
