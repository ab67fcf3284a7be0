"""The ingestor's picows client (:mod:`algostream.ingest.wsclient`) against a real
``websockets`` server: whole messages in order (fragments joined), text as ``str``,
server pings answered, a server close and a refused connect as ``OSError`` (the
ingestor's reconnect path), the HTTP status of a refused handshake named."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import websockets
from websockets.datastructures import Headers
from websockets.http11 import Response

from algostream.ingest.wsclient import WSClosed, connect
from tests.kafka_kit import free_port

Handler = Callable[[Any], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[Any] = []

    async def start(handler: Handler, **kw: Any) -> str:
        server = await websockets.serve(handler, "127.0.0.1", 0, **kw)
        servers.append(server)
        return f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/stream"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_messages_in_order_fragments_joined_then_closed(serve: Any) -> None:
    async def handler(ws: Any) -> None:
        await ws.send('{"a":1}')
        await ws.send(['{"b":', "2}"])  # one message in two fragments
        await ws.send(b"\x01\x02")
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)  # answered by the client
        await ws.send("after ping")
        await ws.close(1001, "going away")

    conn = await connect(await serve(handler))
    assert await conn.recv() == '{"a":1}'
    assert await conn.recv() == '{"b":2}'
    assert await conn.recv() == b"\x01\x02"
    assert await conn.recv() == "after ping"
    with pytest.raises(WSClosed, match="1001: going away") as err:
        await asyncio.wait_for(conn.recv(), 5)
    assert isinstance(err.value, OSError)
    await conn.close()


async def test_buffered_says_whether_recv_would_wait(serve: Any) -> None:
    sent = asyncio.Event()

    async def handler(ws: Any) -> None:
        await ws.send("x")
        sent.set()
        await ws.wait_closed()

    conn = await connect(await serve(handler))
    await asyncio.wait_for(sent.wait(), 5)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not conn.buffered():  # the frame is on its way: poll with a deadline
        assert loop.time() < deadline, "the frame never arrived"
        await asyncio.sleep(0.005)
    assert await conn.recv() == "x" and not conn.buffered()
    await conn.send('{"method":"SUBSCRIBE"}')
    await conn.close()
    with pytest.raises(WSClosed):
        await conn.recv()


async def test_refused_connect_and_handshake_are_oserrors(serve: Any) -> None:
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{free_port()}/stream", open_timeout=5)

    def refuse(conn: Any, request: Any) -> Response:
        return Response(429, "Too Many Requests", Headers({"Retry-After": "1"}), b"")

    url = await serve(lambda ws: ws.wait_closed(), process_request=refuse)
    with pytest.raises(WSClosed, match="429"):
        await connect(url, open_timeout=5)
