"""An OCO on live USD-M futures, as real processes on the real broker: the simulator's
signed ``/fapi/v1/order`` has no OCO, so the trading worker (``paper_trading: false``)
places both legs and, when the take-profit fills, cancels the stop-loss; each leg's
lifecycle is on ``orders.events`` with the list id.

The gate's book top is set 1 % above the simulator's market, so the take-profit (a BUY
limit below the gate's mid, as an exit of a short must be) is at or above the venue's
ask: it fills as soon as it is placed, and the emulation is what the test watches."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx

from algostream.model import (
    BookTop,
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Position,
    Side,
)
from tests.integration.streams.test_live_execution import KEY, SECRET, wait_up
from tests.kafka_kit import decoded, free_port, produce, read_until

PERP = "BINANCE_USDM:BTCUSDT"
CENT = Decimal("0.01")


def proposal(coid: str, side: Side, mid: Decimal, **kw: object) -> OrderRequest:
    now = time.time_ns()
    fields: dict[str, object] = {
        "instrument": PERP, "ts_event": now, "ts_init": now, "record_id": f"rec-{coid}",
        "lineage_id": "sig", "account": "paper", "client_order_id": coid,
        "strategy": "test", "side": side, "order_type": OrderType.MARKET,
        "quantity": Decimal("0.01"), "arrival_mid": mid,
    } | kw  # fmt: skip
    return OrderRequest.model_validate(fields)


async def test_live_usdm_oco_take_profit_fill_cancels_the_stop(
    provisioned, supervisor, kafka_env
) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    creds = {"ALGOSTREAM_API_KEY": KEY, "ALGOSTREAM_API_SECRET": SECRET}
    supervisor.start("sim", "sim", "--port", str(port), "--rate", "5", env=creds)
    await wait_up(url)
    async with httpx.AsyncClient() as http:
        book = (await http.get(f"{url}/sim/book", params={"symbol": "BTCUSDT", "limit": 5})).json()
    ask = Decimal(book["asks"][0][0])
    mid = (ask * Decimal("1.01")).quantize(CENT)
    now = time.time_ns()
    bids, asks = ((mid - 1, Decimal(5)),), ((mid + 1, Decimal(5)),)
    top = BookTop(
        instrument=PERP, ts_event=now, ts_init=now, record_id="o-t1", lineage_id="md",
        bids=bids, asks=asks, best_bid=mid - 1, best_ask=mid + 1, mid=mid, update_id=1,
    )  # fmt: skip
    await produce(s, "book.top", [top])
    supervisor.start(
        "trading", "worker", "trading", "--web-port", "0", "--metrics-port", "0",
        env=creds | {
            "ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm",
            "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
            "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",
            "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": url,
            "ALGOSTREAM__EXECUTION__ORDER_POLL_INTERVAL_MS": "200",
            "ALGOSTREAM__RISK__LEVERAGE": "5",
            "ALGOSTREAM__RISK__MAX_ORDER_AGE_MS": "0",
        },
    )  # fmt: skip

    def has(coid: str, status: OrderStatus):  # type: ignore[no-untyped-def]
        def done(msgs) -> bool:  # type: ignore[no-untyped-def]
            return any(
                e.client_order_id == coid and e.status is status  # type: ignore[attr-defined]
                for e in decoded(msgs, OrderEvent)
            )

        return done

    await produce(s, "orders.proposed", [proposal("o-short", Side.SELL, mid)])
    await read_until(s, "orders.events", has("o-short", OrderStatus.FILLED), 90)

    def short(msgs) -> bool:  # type: ignore[no-untyped-def]  # the gate has the fill
        return any(
            p.instrument == PERP and p.strategy is None and p.quantity == Decimal("-0.01")  # type: ignore[attr-defined]
            for p in decoded(msgs, Position)
        )

    await read_until(s, "positions", short, 60)
    tp = (ask * Decimal("1.004")).quantize(CENT)  # below the gate's mid, above the venue's ask
    sl = (mid * Decimal("1.01")).quantize(CENT)
    oco = proposal("o-oco", Side.BUY, mid, order_type=OrderType.LIMIT, limit_price=tp,
                   order_list="OCO", take_profit=tp, stop_loss=sl, reduce_only=True)  # fmt: skip
    await produce(s, "orders.proposed", [oco])
    msgs = await read_until(s, "orders.events", has("o-oco-sl", OrderStatus.CANCELLED), 90)
    legs = [e for e in decoded(msgs, OrderEvent) if e.client_order_id.startswith("o-oco")]  # type: ignore[attr-defined]
    seen = [(e.client_order_id, e.status) for e in legs]  # type: ignore[attr-defined]
    assert ("o-oco-tp", OrderStatus.ACCEPTED) in seen, supervisor.tail("trading")
    assert ("o-oco-tp", OrderStatus.FILLED) in seen, seen
    assert seen[-1] == ("o-oco-sl", OrderStatus.CANCELLED), seen
    for coid in ("o-oco-sl", "o-oco-tp"):  # each leg's lifecycle in order on the topic
        statuses = [status for c, status in seen if c == coid]
        assert statuses[0] is OrderStatus.ACCEPTED, seen
        assert not any(status.is_terminal for status in statuses[:-1]), seen
    assert "OCO: o-oco-tp filled" in legs[-1].reason  # type: ignore[attr-defined]
    assert {e.list_id for e in legs} == {"o-oco"}  # type: ignore[attr-defined]
