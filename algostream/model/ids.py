"""Typed identifiers.

An instrument id is ``VENUE:SYMBOL`` in upper case, e.g. ``BINANCE:BTCUSDT`` or
``COINBASE:BTC-USD``. It is the Kafka key of every market-data record.

>>> instrument_id("binance", "btcusdt")
'BINANCE:BTCUSDT'
>>> split_instrument("BINANCE:BTCUSDT")
('BINANCE', 'BTCUSDT')
"""

from __future__ import annotations

import hashlib
from typing import Annotated

from pydantic import StringConstraints

INSTRUMENT_PATTERN = r"^[A-Z0-9_]+:[A-Z0-9_\-/.*]+$"

InstrumentId = Annotated[str, StringConstraints(pattern=INSTRUMENT_PATTERN, max_length=64)]
AccountId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]+$", max_length=64)]
#: Binance allows ``^[\.A-Z\:/a-z0-9_-]{1,36}$`` for newClientOrderId.
ClientOrderId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.:/]{1,36}$")]
StrategyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-.]+$", max_length=64)]
#: A lineage id: the ``record_id`` of the record that caused this one.
LineageId = Annotated[str, StringConstraints(max_length=128)]


def instrument_id(venue: str, symbol: str) -> str:
    """Build an instrument id from a venue and an exchange symbol."""
    return f"{venue.upper()}:{symbol.upper()}"


def split_instrument(instrument: str) -> tuple[str, str]:
    """Split ``VENUE:SYMBOL`` into its two parts; raises ValueError naming the value."""
    venue, sep, symbol = instrument.partition(":")
    if not sep or not venue or not symbol:
        raise ValueError(f"instrument id {instrument!r} is not VENUE:SYMBOL")
    return venue, symbol


def derive_id(*parts: object, length: int = 24) -> str:
    """A deterministic id from its causes (same inputs, same id, run after run).

    Used for client order ids so that a replayed or re-processed proposal maps to the same
    order and can be de-duplicated downstream.
    """
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=16)
    return digest.hexdigest()[:length]


def child_id(kind: str, parent: str) -> str:
    """``derive_id(kind, parent)`` for two strings, without its per-part ``str`` and join:
    the id of each ``book.top`` from its update's (once per book update)."""
    return hashlib.blake2b(f"{kind}|{parent}".encode(), digest_size=16).hexdigest()[:24]
