"""Coinbase Advanced Trade channels: sequence numbers, snapshot + updates, heartbeats."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import httpx
import orjson
from conftest import StartSim
from simtest_helpers import recv_json, ws_connect

from algostream.sim import SimServer


def sub(channel: str, *products: str, kind: str = "subscribe") -> str:
    return orjson.dumps({"type": kind, "product_ids": list(products), "channel": channel}).decode()


class CbBook:
    """An independent l2_data consumer."""

    def __init__(self) -> None:
        self.sides: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "offer": {}}
        self.snapshots = 0

    def apply(self, event: dict[str, Any]) -> None:
        if event["type"] == "snapshot":
            self.snapshots += 1
            self.sides = {"bid": {}, "offer": {}}
        for u in event["updates"]:
            side = self.sides[u["side"]]
            price, qty = Decimal(u["price_level"]), Decimal(u["new_quantity"])
            if qty == 0:
                side.pop(price, None)
            else:
                side[price] = qty

    def levels(self) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        return (
            sorted(self.sides["bid"].items(), reverse=True),
            sorted(self.sides["offer"].items()),
        )


async def wait_coinbase(server: SimServer) -> None:
    async with asyncio.timeout(5):
        while not server.exchange.coinbase.clients:
            await asyncio.sleep(0.005)


async def test_level2_snapshot_and_updates_track_the_true_book(start_sim: StartSim) -> None:
    server = await start_sim(rate=1500)
    book, seqs, channels = CbBook(), [], set()
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        await ws.send(sub("level2", "BTC-USDT"))
        await ws.send(sub("market_trades", "BTC-USDT"))
        first = await recv_json(ws)
        assert first["channel"] == "subscriptions" and first["sequence_num"] == 0
        assert first["events"][0]["subscriptions"] == {"level2": ["BTC-USDT"]}
        seqs.append(0)
        async with asyncio.timeout(10):
            while len(seqs) < 400:
                msg = await recv_json(ws)
                assert set(msg) == {"channel", "client_id", "timestamp", "sequence_num", "events"}
                assert msg["timestamp"].endswith("Z") and len(msg["timestamp"]) == 30
                seqs.append(msg["sequence_num"])
                channels.add(msg["channel"])
                for event in msg["events"] if msg["channel"] == "l2_data" else []:
                    assert event["product_id"] == "BTC-USDT"
                    book.apply(event)
                for trade in (
                    msg["events"][0]["trades"] if msg["channel"] == "market_trades" else []
                ):
                    assert trade["side"] in ("BUY", "SELL") and Decimal(trade["size"]) > 0
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            await http.post("/sim/pause")
        marker = server.exchange.events_emitted
        await ws.send(sub("heartbeats"))  # its reply marks the end of the queued updates
        async with asyncio.timeout(10):
            while (msg := await recv_json(ws))["channel"] != "subscriptions":
                seqs.append(msg["sequence_num"])
                for event in msg["events"] if msg["channel"] == "l2_data" else []:
                    book.apply(event)
    assert seqs == list(range(len(seqs)))
    assert msg["sequence_num"] == len(seqs)
    assert channels == {"subscriptions", "l2_data", "market_trades"}
    assert book.snapshots == 1 and server.exchange.events_emitted == marker
    assert book.levels() == server.exchange.market.book("BTCUSDT")


async def test_heartbeats_count_up_and_unsubscribe_stops_updates(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, heartbeat_interval_s=0.02)
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        await ws.send(sub("heartbeats"))
        assert (await recv_json(ws))["channel"] == "subscriptions"
        counters = []
        while len(counters) < 3:
            msg = await recv_json(ws)
            assert msg["channel"] == "heartbeats"
            counters.append(int(msg["events"][0]["heartbeat_counter"]))  # a string, as Coinbase
        assert counters == [counters[0], counters[0] + 1, counters[0] + 2]
        await ws.send(sub("level2", "ETH-USDT"))
        await ws.send(sub("level2", "ETH-USDT", kind="unsubscribe"))
        await ws.send(sub("heartbeats", kind="unsubscribe"))
        server.exchange.emit_events(100)
        await ws.send(sub("level2", "BTC-USDT"))
        replies = []
        async with asyncio.timeout(5):
            while len(replies) < 6:
                msg = await recv_json(ws)
                if msg["channel"] != "heartbeats":
                    replies.append((msg["channel"], msg["events"][0].get("type")))
    subscribed, snapshot = ("subscriptions", None), ("l2_data", "snapshot")
    # ETH sub + snapshot, two unsubscribes, no updates for the 100 events, BTC sub + snapshot
    assert replies == [subscribed, snapshot, subscribed, subscribed, subscribed, snapshot]


async def test_dropped_l2_messages_leave_a_sequence_gap(start_sim: StartSim) -> None:
    server = await start_sim(rate=0, symbols=("BTCUSDT",))
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        await ws.send(sub("level2", "BTC-USDT"))
        assert [(await recv_json(ws))["sequence_num"] for _ in range(2)] == [0, 1]
        server.exchange.drop_depth(3)
        server.exchange.emit_events(10)
        seqs = [(await recv_json(ws))["sequence_num"] for _ in range(7)]
    assert seqs == list(range(5, 12))


async def test_bad_requests_get_coinbase_errors(start_sim: StartSim) -> None:
    server = await start_sim(rate=0)
    async with ws_connect(server.ws_url + "/coinbase") as ws:
        for request in (sub("level3", "BTC-USDT"), sub("level2", "DOGE-USD"), "{oops"):
            await ws.send(request)
            reply = await recv_json(ws)
            assert reply["type"] == "error" and reply["message"]
            assert "sequence_num" not in reply
        assert "DOGE-USD" in (await _error_for(ws, sub("level2", "DOGE-USD")))


async def _error_for(ws: Any, request: str) -> str:
    await ws.send(request)
    message: str = (await recv_json(ws))["message"]
    return message
