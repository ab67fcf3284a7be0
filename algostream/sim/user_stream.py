"""The simulated user data stream: listen keys and where account events are sent.

``POST /api/v3/userDataStream`` (API key, no signature) answers ``{"listenKey": ...}``;
the key is valid for 60 minutes, extended by ``PUT`` and ended by ``DELETE`` (both take
``listenKey``; an unknown or expired key is ``-1125``). A client reads its events on the
market-data WebSocket as a stream named by the key: ``/ws/<listenKey>`` or
``/stream?streams=<listenKey>``. Events: ``executionReport`` on every order change,
``outboundAccountPosition`` after balances move, and ``listenKeyExpired`` once when a key
lapses (after which nothing more is sent on it). As on Binance, ``POST`` while a key is
live returns that same key.

>>> keys = ListenKeys(lambda: 0, lambda key, frame: None)
>>> key = keys.create(); keys.create() == key and len(key) == 60
True
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import orjson

from algostream.sim.binance_errors import ApiError, param

ClockMs = Callable[[], int]
Publish = Callable[[str, bytes], None]
VALIDITY_MS = 60 * 60 * 1000


def invalid_listen_key() -> ApiError:
    """-1125: the key does not exist (never issued, deleted or expired)."""
    return ApiError(400, -1125, "This listenKey does not exist.")


class ListenKeys:
    """Issued listen keys with their expiry, and the fan-out of account events."""

    def __init__(self, clock_ms: ClockMs, publish: Publish | None = None) -> None:
        self._clock = clock_ms
        self.publish = publish
        self._expiry: dict[str, int] = {}
        self.events_sent = 0

    def create(self) -> str:
        """A live key (the existing one, extended, if there is one)."""
        self.expire_due()
        now = self._clock()
        for key in self._expiry:
            self._expiry[key] = now + VALIDITY_MS
            return key
        key = secrets.token_hex(30)
        self._expiry[key] = now + VALIDITY_MS
        return key

    def keepalive(self, params: dict[str, str]) -> None:
        """Extend a key by 60 minutes (-1125 when unknown)."""
        key = self._live(params)
        self._expiry[key] = self._clock() + VALIDITY_MS

    def close(self, params: dict[str, str]) -> None:
        """End a key (-1125 when unknown)."""
        del self._expiry[self._live(params)]

    def live(self) -> list[str]:
        """The keys that receive events now."""
        self.expire_due()
        return list(self._expiry)

    def _live(self, params: dict[str, str]) -> str:
        key = param(params, "listenKey")
        self.expire_due()
        if key not in self._expiry:
            raise invalid_listen_key()
        return key

    def expire_all(self) -> int:
        """Fault: every live key lapses now (``listenKeyExpired`` on each); returns how many."""
        keys = list(self._expiry)
        self.expire_due(force=True)
        return len(keys)

    def expire_due(self, *, force: bool = False) -> None:
        """Drop lapsed keys, sending each its ``listenKeyExpired`` event."""
        now = self._clock()
        for key, until in list(self._expiry.items()):
            if force or now >= until:
                del self._expiry[key]
                event = {"e": "listenKeyExpired", "E": now, "listenKey": key}
                self._send(key, orjson.dumps(event))

    def emit(self, event: dict[str, object]) -> None:
        """Send one account event on every live key."""
        if not self._expiry or self.publish is None:
            return
        frame = orjson.dumps(event)
        for key in self.live():
            self._send(key, frame)

    def _send(self, key: str, frame: bytes) -> None:
        if self.publish is not None:
            self.publish(key, frame)
            self.events_sent += 1
