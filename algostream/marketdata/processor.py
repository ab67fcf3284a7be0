"""The book stage: ``md.book`` in; ``book.top`` and ``book.integrity`` out.

:class:`BookProcessor` keeps one :class:`OrderBook` per instrument and re-checks the chain
of the *published* stream (so a lost or reordered record on Kafka is noticed downstream,
not only at the ingestor): for venues with contiguous update ids (Binance) a DELTA must
satisfy ``first_update_id <= last + 1``; otherwise GAP, and the instrument is out of sync
(no tops) until the next SNAPSHOT (RESYNCED). Overlap (``first <= last``) is accepted as
in :mod:`algostream.marketdata.sync`: right after a snapshot it is the normal case. DELTAs
with ``final_update_id <= last`` are duplicates (at-least-once delivery) and skipped. For
other venues (Coinbase: ids are a per-connection counter shared by every product) only
the duplicate check applies; their gaps are found by the ingestor's sequence tracker.

A faust agent::

    processor = BookProcessor(settings.market_data.book_top_levels)

    @app.agent(md_book)
    async def books(stream):
        async for update in stream:
            for record in processor.on_update(update, time.time_ns()):
                await publish(record)              # BookTop -> book.top, else book.integrity
            book_table[update.instrument] = processor.state(update.instrument)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, cast

from algostream.marketdata.book import Level, OrderBook, crossed
from algostream.marketdata.errors import BookStateError
from algostream.marketdata.sync import integrity_event
from algostream.model.enums import BookUpdateKind, IntegrityKind
from algostream.model.fast import from_fields
from algostream.model.ids import child_id, derive_id, split_instrument
from algostream.model.records import BookIntegrity, BookTop, BookUpdate, Record


@dataclass
class _Instrument:
    book: OrderBook
    in_sync: bool = False
    ever_synced: bool = False
    crossed: bool = False
    stale: bool = False
    warned_unsynced: bool = False
    last_seen_ns: int = 0
    last_cause: BookUpdate | None = field(default=None, repr=False)
    #: whether the venue's update ids are contiguous (a DELTA must start at ``last + 1``)
    contiguous: bool = False
    #: the sides of the last top and what was derived from them (mid, spread, imbalance,
    #: microprice, each side's total quantity): an update that leaves both sides' tops as
    #: they were derives nothing
    derived_from: tuple[object, object] | None = field(default=None, repr=False)
    derived: tuple[Any, ...] = field(default=(), repr=False)


_DELTA = BookUpdateKind.DELTA
_TWO = Decimal(2)
_ZERO = Decimal(0)
_FLAGS = ("in_sync", "ever_synced", "crossed", "stale", "warned_unsynced")


class BookProcessor:
    """Order books per instrument → tops and integrity events (see the module docstring)."""

    def __init__(
        self, top_levels: int = 10, *, contiguous_venues: Iterable[str] = ("BINANCE",)
    ) -> None:
        if top_levels < 1:
            raise ValueError(f"top_levels={top_levels}: expected >= 1")
        self.top_levels = top_levels
        self.contiguous_venues = frozenset(v.upper() for v in contiguous_venues)
        self._books: dict[str, _Instrument] = {}
        #: the compiled path (:mod:`algostream.marketdata.native`), when attached: it owns
        #: the instruments in its ``books`` (their state here is stale until it settles
        #: them back, which every method below that reads an instrument does first)
        self.fast: Any = None

    @property
    def instruments(self) -> list[str]:
        """Instruments seen so far."""
        return list(self._books)

    def has(self, instrument: str) -> bool:
        """Whether ``instrument`` has been seen."""
        return instrument in self._books

    def book(self, instrument: str) -> OrderBook | None:
        """The live book of ``instrument`` (``None`` if never seen)."""
        if self.fast is not None:
            self.fast.settle(instrument)
        st = self._books.get(instrument)
        return st.book if st else None

    def is_in_sync(self, instrument: str) -> bool:
        """True when the instrument's book is synced (a snapshot and no gap since)."""
        st = self._books.get(instrument)
        return bool(st and st.in_sync)

    def on_update(self, update: BookUpdate, now_ns: int) -> list[Record]:
        """Apply one ``md.book`` record; return integrity events and the new :class:`BookTop`."""
        if self.fast is not None:
            self.fast.settle(update.instrument)
        st = self._books.get(update.instrument)
        if st is None:
            st = self._instrument(update.instrument, OrderBook(update.instrument))
        if update.kind is _DELTA and st.in_sync and not st.stale:
            # the hot path (issue 27): a delta on a synced book; the chain check of
            # _accept_delta inline, anything out of the ordinary on the general path below
            book = st.book
            last = book.last_update_id
            assert last is not None  # in sync implies a snapshot was applied
            if update.final_update_id <= last:
                st.last_seen_ns, st.last_cause = now_ns, update
                return []  # a re-delivered update
            if not (st.contiguous and update.first_update_id > last + 1):
                st.last_seen_ns, st.last_cause = now_ns, update
                book.apply_delta(update.bids, update.asks)
                book.last_update_id = update.final_update_id
                book.ts_event = update.ts_event
                bids, asks = book.top(self.top_levels)
                bid, ask = (bids[0] if bids else None), (asks[0] if asks else None)
                out: list[Record] = (
                    []
                    if (bid is not None and ask is not None and bid[0] >= ask[0]) == st.crossed
                    else self._crossed(st, update, bid, ask)
                )
                out.append(self._top(st, update, now_ns, bids, asks))
                return out
        return self._update(st, update, now_ns)

    def _instrument(self, instrument: str, book: OrderBook) -> _Instrument:
        st = self._books[instrument] = _Instrument(book)
        st.contiguous = split_instrument(instrument)[0] in self.contiguous_venues
        return st

    def _update(self, st: _Instrument, update: BookUpdate, now_ns: int) -> list[Record]:
        """:meth:`on_update` for every case (snapshots, gaps, duplicates, a STALE's end)."""
        was_stale = st.stale
        st.last_seen_ns, st.last_cause = now_ns, update
        out: list[Record] = []
        if update.kind is BookUpdateKind.SNAPSHOT:
            if st.ever_synced and not st.in_sync:
                out.append(
                    integrity_event(
                        IntegrityKind.RESYNCED,
                        update,
                        f"snapshot at update id {update.final_update_id}",
                        received=update.final_update_id,
                    )
                )
            st.book.apply(update)
            st.in_sync = st.ever_synced = True
        elif not self._accept_delta(st, update, out):
            return out  # not applied (a re-delivered update): a STALE stays until one is
        else:
            st.book.apply(update)
        st.stale = False
        bids, asks = st.book.top(self.top_levels)  # kept by the book until an update reaches it
        out += self._crossed(st, update, bids[0] if bids else None, asks[0] if asks else None)
        if (
            was_stale
            and st.in_sync
            and not any(
                isinstance(r, BookIntegrity) and r.kind is IntegrityKind.RESYNCED for r in out
            )
        ):
            # the STALE this processor raised is over: updates flow on the same chain
            out.append(
                integrity_event(
                    IntegrityKind.RESYNCED,
                    update,
                    f"updates resumed at update id {update.final_update_id} after STALE",
                    received=update.final_update_id,
                )
            )
        out.append(self._top(st, update, now_ns, *st.book.top(self.top_levels)))
        return out

    def _accept_delta(self, st: _Instrument, update: BookUpdate, out: list[Record]) -> bool:
        if not st.in_sync:
            if not st.ever_synced and not st.warned_unsynced:
                st.warned_unsynced = True
                out.append(
                    integrity_event(
                        IntegrityKind.GAP,
                        update,
                        "delta before any snapshot: waiting for one",
                        received=update.first_update_id,
                    )
                )
            return False
        last = st.book.last_update_id
        assert last is not None  # in sync implies a snapshot was applied
        if update.final_update_id <= last:
            return False
        if st.contiguous and update.first_update_id > last + 1:
            st.in_sync = False
            st.book.clear()
            out.append(
                integrity_event(
                    IntegrityKind.GAP,
                    update,
                    f"md.book chain broken: expected update {last + 1}, got "
                    f"{update.first_update_id}..{update.final_update_id}",
                    expected=last + 1,
                    received=update.first_update_id,
                )
            )
            return False
        return True

    def _crossed(
        self, st: _Instrument, update: BookUpdate, bid: Level | None, ask: Level | None
    ) -> list[Record]:
        now_crossed = crossed(bid, ask)
        if now_crossed == st.crossed:
            return []
        st.crossed = now_crossed
        if not now_crossed:  # the CROSSED this processor raised is over
            if not st.in_sync or update.kind is BookUpdateKind.SNAPSHOT:
                return []  # a snapshot after a resync already says RESYNCED
            return [
                integrity_event(
                    IntegrityKind.RESYNCED,
                    update,
                    "book uncrossed: "
                    + (
                        f"best bid {bid[0]} < best ask {ask[0]}"
                        if bid and ask
                        else "a side is empty"
                    ),
                    received=update.final_update_id,
                )
            ]
        assert bid is not None and ask is not None
        return [
            integrity_event(
                IntegrityKind.CROSSED,
                update,
                f"best bid {bid[0]} >= best ask {ask[0]}",
                received=update.final_update_id,
            )
        ]

    def _top(
        self,
        st: _Instrument,
        update: BookUpdate,
        now_ns: int,
        bids: tuple[Level, ...],
        asks: tuple[Level, ...],
    ) -> BookTop:
        """The ``book.top`` of ``update``, given the book's top ``bids`` and ``asks``."""
        kept = st.derived_from
        if kept is None or kept[0] is not bids or kept[1] is not asks:
            # each side's quantity summed again only when that side's top changed
            if kept is not None and kept[0] is bids:
                bid_qty = st.derived[6]
            else:
                bid_qty = sum([q for _, q in bids], _ZERO)
            if kept is not None and kept[1] is asks:
                ask_qty = st.derived[7]
            else:
                ask_qty = sum([q for _, q in asks], _ZERO)
            total = bid_qty + ask_qty
            imbalance = None if total == 0 else float((bid_qty - ask_qty) / total)
            if bids and asks:
                (bid, bq), (ask, aq) = bids[0], asks[0]
                st.derived = (
                    bid,
                    ask,
                    (bid + ask) / _TWO,
                    ask - bid,
                    imbalance,
                    (bid * aq + ask * bq) / (bq + aq),
                    bid_qty,
                    ask_qty,
                )
            else:
                st.derived = (
                    bids[0][0] if bids else None,
                    asks[0][0] if asks else None,
                    None,
                    None,
                    imbalance,
                    None,
                    bid_qty,
                    ask_qty,
                )
            st.derived_from = (bids, asks)
        best_bid, best_ask, mid_, spread_, imbalance, micro, _, _ = st.derived
        parent = update.record_id
        # every field in declared order, already valid (frames.build without its checks)
        return from_fields(
            BookTop,
            {
                "instrument": update.instrument,
                "ts_event": update.ts_event,
                "ts_init": now_ns,
                "record_id": child_id("book.top", parent),
                "lineage_id": parent,
                "bids": bids,
                "asks": asks,
                "best_bid": best_bid,
                "best_ask": best_ask,
                "mid": mid_,
                "spread": spread_,
                "imbalance": imbalance,
                "microprice": micro,
                "update_id": update.final_update_id,
            },
        )

    def check_stale(self, now_ns: int, stale_after_ns: int) -> list[BookIntegrity]:
        """STALE for each synced instrument without an update for ``stale_after_ns``
        (once per silence; the next update re-arms it)."""
        out: list[BookIntegrity] = []
        owned: Any = ()
        if self.fast is not None:
            # a silent book is handed back (with its last update's time) and checked below;
            # one the compiled path still holds has had an update within the window (its
            # entry here keeps the time it was taken over: never read it for staleness)
            self.fast.settle_silent(now_ns, stale_after_ns)
            owned = self.fast.books
        for inst, st in self._books.items():
            if inst in owned:
                continue
            silent = now_ns - st.last_seen_ns
            if st.in_sync and not st.stale and silent >= stale_after_ns and st.last_cause:
                st.stale = True
                event = integrity_event(
                    IntegrityKind.STALE, st.last_cause, f"no book update for {silent / 1e9:.3f}s"
                )
                out.append(
                    event.model_copy(
                        update={
                            "ts_event": now_ns,
                            "ts_init": now_ns,
                            "record_id": derive_id("integrity", "STALE", inst, now_ns),
                        }
                    )
                )
        return out

    def is_stale(self, instrument: str) -> bool:
        """True while a STALE this processor raised for ``instrument`` is not cleared."""
        st = self._books.get(instrument)
        return bool(st and st.stale)

    def rearm_stale(self, instrument: str) -> None:
        """Forget a STALE that could not be announced (its state write failed): the next
        :meth:`check_stale` raises it again."""
        st = self._books.get(instrument)
        if st is not None:
            st.stale = False

    # ------------------------------------------------------------------ state
    def state(self, instrument: str, *, levels: bool = True) -> dict[str, Any]:
        """JSON-able state of one instrument (for a Faust table keyed by instrument).

        ``levels=False`` leaves the price levels out (empty ``bids``/``asks``): the chain
        position and flags only, for stores that keep levels one key each
        (:class:`~algostream.marketdata.persist.LevelStore`).
        """
        if self.fast is not None:
            if not levels and instrument in self.fast.books:
                held = self.fast.meta(instrument)
                if held is not None:
                    return cast(dict[str, Any], held)
            else:
                self.fast.settle(instrument)
        st = self._books[instrument]
        if levels:
            book = st.book.to_state()
        else:
            b = st.book
            book = {
                "instrument": b.instrument,
                "last_update_id": b.last_update_id,
                "ts_event": b.ts_event,
                "bids": [],
                "asks": [],
            }
        state: dict[str, Any] = {"book": book, "last_seen_ns": st.last_seen_ns}
        state.update({flag: getattr(st, flag) for flag in _FLAGS})
        if st.last_cause is not None:
            state["last_cause"] = st.last_cause.model_dump(
                mode="json",
                include={
                    "instrument",
                    "ts_event",
                    "ts_init",
                    "record_id",
                    "lineage_id",
                    "kind",
                    "first_update_id",
                    "final_update_id",
                },
            )
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Restore one instrument from :meth:`state` output (replaces what is there)."""
        try:
            book = OrderBook.from_state(state["book"])
            st = _Instrument(book, last_seen_ns=int(state["last_seen_ns"]))
            st.contiguous = split_instrument(book.instrument)[0] in self.contiguous_venues
            for flag in _FLAGS:
                value = state[flag]
                if type(value) is not bool:
                    raise BookStateError(f"processor state '{flag}' = {value!r}: expected bool")
                setattr(st, flag, value)
            if state.get("last_cause") is not None:
                st.last_cause = BookUpdate.model_validate(state["last_cause"])
        except KeyError as exc:
            raise BookStateError(f"processor state: key {exc} is missing") from None
        except (TypeError, ValueError) as exc:
            raise BookStateError(f"processor state is malformed: {exc}") from None
        if self.fast is not None:
            self.fast.drop(book.instrument)
        self._books[book.instrument] = st
