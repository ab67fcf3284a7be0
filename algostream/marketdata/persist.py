"""Book state in a key-value table, one price level per key.

Writing a whole book to the table on every update (one changelog record the size of the
book) made the book agent's cost grow with book depth: with a 1000-level snapshot most of
its time went to serialising levels that had not changed. :class:`LevelStore` writes what
changed: for a delta, the levels it touched; for a snapshot or a resync, the difference
between the book and what the table holds. Keys are ``<instrument>|meta`` (the chain
position and flags from :meth:`BookProcessor.state` without levels) and
``<instrument>|b|<price>`` / ``<instrument>|a|<price>`` (quantity as a decimal string).

>>> from algostream.model import BookUpdate, BookUpdateKind
>>> proc, table = BookProcessor(), {}
>>> store = LevelStore(proc)
>>> u = BookUpdate(instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1, record_id="s",
...     lineage_id="r", kind=BookUpdateKind.SNAPSHOT, bids=(("99", "2"),), asks=(("101", "1"),),
...     first_update_id=7, final_update_id=7)
>>> store.save(table, u, proc.on_update(u, 1))
3
>>> sorted(table)
['BINANCE:BTCUSDT|a|101', 'BINANCE:BTCUSDT|b|99', 'BINANCE:BTCUSDT|meta']
>>> fresh = BookProcessor()
>>> LevelStore(fresh).load(table, "BINANCE:BTCUSDT")
True
>>> fresh.book("BINANCE:BTCUSDT").best_bid()
(Decimal('99'), Decimal('2'))
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from decimal import Decimal
from typing import Any

from algostream.marketdata.processor import BookProcessor
from algostream.model.enums import BookUpdateKind
from algostream.model.records import BookTop, BookUpdate, Record

SEP = "|"
_DELTA = BookUpdateKind.DELTA
SIDES = ("b", "a")


class LevelStore:
    """Persist a :class:`BookProcessor`'s books into a mutable mapping, level by level."""

    def __init__(self, proc: BookProcessor) -> None:
        self.proc = proc
        #: what the table holds, per instrument and side: price -> (key, quantity)
        self._mirror: dict[str, dict[str, dict[Decimal, tuple[str, Decimal]]]] = {}

    def load(self, table: Any, instrument: str) -> bool:
        """Restore ``instrument`` from ``table`` (any mapping with ``items()``); False if absent."""
        meta = table.get(f"{instrument}{SEP}meta")
        if meta is None:
            return False
        mirror = self._mirror[instrument] = {"b": {}, "a": {}}
        prefix = f"{instrument}{SEP}"
        levels: dict[str, list[list[str]]] = {"b": [], "a": []}
        for key, qty in list(table.items()):
            if not key.startswith(prefix) or key.endswith(f"{SEP}meta"):
                continue
            side, price = key[len(prefix) :].split(SEP, 1)
            levels[side].append([price, qty])
            mirror[side][Decimal(price)] = (key, Decimal(qty))
        state = dict(meta)
        state["book"] = dict(meta["book"], bids=levels["b"], asks=levels["a"])
        self.proc.restore(state)
        return True

    def save(
        self,
        table: MutableMapping[str, Any],
        update: BookUpdate,
        out: Sequence[Record],
        *,
        meta: bool = True,
    ) -> int:
        """Write what ``update`` (and the records it produced) changed; returns keys written.

        ``meta=False`` leaves the instrument's chain position out, for a caller that writes
        many updates at once and ends with :meth:`save_meta` (it changes every update).
        """
        inst = update.instrument
        book = self.proc.book(inst)
        if book is None:
            return 0
        mirror = self._mirror.get(inst)
        if mirror is None:
            mirror = self._mirror[inst] = {"b": {}, "a": {}}
        written = self.save_meta(table, inst) if meta else 0
        if not out:
            return written  # nothing applied (a duplicate, or waiting for a snapshot)
        # a delta applied as it came (its only output is the top) set its own levels to its
        # quantities (0: removed) and touched nothing else; after a snapshot, a gap or a
        # resync the whole side is compared with what the table holds
        plain = update.kind is _DELTA and len(out) == 1 and type(out[0]) is BookTop
        for side, changes in (("b", update.bids), ("a", update.asks)):
            if plain and not changes:
                continue
            held = mirror[side]
            # (price, quantity wanted in the table: 0 or None, no level)
            wanted: Iterable[tuple[Decimal, Decimal | None]] = (
                changes
                if plain
                else [(p, book.level(side, p)) for p in set(held) | set(book.prices(side))]
            )
            for price, want in wanted:
                have = held.get(price)
                if not want:
                    if have is not None:
                        table.pop(have[0], None)
                        del held[price]
                        written += 1
                elif have is None or have[1] != want:
                    key = have[0] if have is not None else f"{inst}{SEP}{side}{SEP}{price}"
                    table[key] = str(want)
                    held[price] = (key, want)
                    written += 1
        return written

    def save_meta(self, table: MutableMapping[str, Any], instrument: str) -> int:
        """Write ``instrument``'s chain position and flags (its levels are keys of their
        own); returns keys written."""
        if not self.proc.has(instrument):
            return 0
        table[f"{instrument}{SEP}meta"] = self.proc.state(instrument, levels=False)
        return 1
