"""The ingestor's WebSocket client on ``picows`` (C frame parser, asyncio transport).

``websockets`` parses each frame in Python (~8-10 µs of CPU a frame, permessage-deflate
~4 more); picows parses in C and hands complete frames to a callback. :class:`PicowsConnection`
wraps it in the little of ``websockets``' client API the ingestor uses: ``recv`` (a
whole message, fragments joined), ``send``, ``close`` and :meth:`buffered`. Server pings
are answered by picows (auto-pong); no compression is offered, so the server sends plain
frames. A closed connection (by the server, a dropped socket or a protocol error) makes
``recv`` raise :class:`WSClosed`, an :class:`OSError`, like a failed connect
(:func:`connect`), so the ingestor's reconnect loop treats both as a disconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque

from picows import WSCloseCode, WSError, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect


class WSClosed(ConnectionError):
    """The WebSocket connection is closed (or could not be opened)."""


class _Listener(WSListener):
    def __init__(self, conn: PicowsConnection) -> None:
        self.conn = conn

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        conn = self.conn
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if frame.fin:
                conn._push(
                    frame.get_payload_as_utf8_text()
                    if kind is WSMsgType.TEXT
                    else frame.get_payload_as_bytes()
                )
            else:  # the first fragment of a message
                conn._parts = [frame.get_payload_as_bytes()]
                conn._text = kind is WSMsgType.TEXT
        elif kind is WSMsgType.CONTINUATION:
            if conn._parts is None:
                raise WSClosed("continuation frame without a first fragment")
            conn._parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                data = b"".join(conn._parts)
                conn._parts = None
                conn._push(data.decode() if conn._text else data)
        elif kind is WSMsgType.CLOSE:
            conn.close_code = frame.get_close_code()
            conn.close_reason = frame.get_close_message() or b""
            transport.send_close(frame.get_close_code())
            transport.disconnect()
        # PING: picows answers (enable_auto_pong); PONG: nothing asked for one

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.conn._on_closed()


class PicowsConnection:
    """One client connection: messages in arrival order, ``recv`` waits for the next."""

    def __init__(self) -> None:
        self._queue: deque[str | bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._parts: list[bytes] | None = None
        self._text = True
        self.transport: WSTransport | None = None
        self.close_code: WSCloseCode | None = None
        self.close_reason: bytes = b""

    def _push(self, message: str | bytes) -> None:
        self._queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _on_closed(self) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def buffered(self) -> bool:
        """Whether a whole message waits, so ``recv`` returns it without waiting."""
        return bool(self._queue)

    async def recv(self) -> str | bytes:
        """The next message (text as ``str``); :class:`WSClosed` once closed and drained."""
        queue = self._queue
        while not queue:
            if self._closed:
                code = "no close frame" if self.close_code is None else self.close_code.value
                reason = self.close_reason.decode(errors="replace")
                raise WSClosed(f"websocket closed ({code}{': ' + reason if reason else ''})")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        return queue.popleft()

    async def send(self, message: str | bytes) -> None:
        if self._closed or self.transport is None:
            raise WSClosed("websocket closed")
        if isinstance(message, str):
            self.transport.send(WSMsgType.TEXT, message.encode())
        else:
            self.transport.send(WSMsgType.BINARY, message)

    async def close(self, timeout_s: float = 2.0) -> None:
        transport = self.transport
        if transport is None:
            return
        if not self._closed:
            with contextlib.suppress(Exception):
                transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(transport.wait_disconnected(), timeout_s)


async def connect(url: str, *, max_size: int = 2**24, open_timeout: float = 10) -> PicowsConnection:
    """Open ``url``; :class:`WSClosed` (an ``OSError``) when it cannot be opened."""
    conn = PicowsConnection()
    try:
        async with asyncio.timeout(open_timeout):  # the TCP connect too, not only the handshake
            transport, _ = await ws_connect(
                lambda: _Listener(conn),
                url,
                websocket_handshake_timeout=open_timeout,
                max_frame_size=max_size,
                enable_auto_pong=True,
            )
    except WSError as exc:  # handshake refused, bad URL, protocol error
        raise WSClosed(f"websocket not opened: {exc!r}") from exc
    conn.transport = transport
    return conn
