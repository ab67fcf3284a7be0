"""Book synchronisation as pure state machines: what may be published on ``md.book``.

:class:`BinanceBookSync` is Binance's documented procedure for a local order book:

1. buffer diffs until a REST snapshot is supplied (:attr:`needs_snapshot` says "fetch one");
2. drop buffered diffs with ``u <= lastUpdateId``;
3. if the first diff left starts after ``lastUpdateId + 1`` the snapshot is too old: keep
   buffering and fetch another (this is the documented "lastUpdateId < first U" check,
   stated exactly: a first ``U`` of ``lastUpdateId + 1`` needs nothing older);
4. the first applied diff spans ``lastUpdateId + 1`` (``U <= lastUpdateId + 1 <= u``);
5. from then on each diff must continue the chain, else GAP: back to step 1.

Continuation is checked as ``U <= prev_u + 1 <= u`` (a diff starting exactly at
``prev_u + 1`` is the documented case). Allowing overlap is safe for the same reason step 4
is: a diff carries the final quantity of every level it touched in ``[U, u]``. It lets a
rotated connection, whose 100 ms batches are cut differently, continue without a resync.
Diffs entirely at or below ``prev_u`` are duplicates and dropped.

>>> sync = BinanceBookSync("BINANCE:BTCUSDT")
>>> sync.needs_snapshot
True
"""

from __future__ import annotations

from collections import deque
from enum import StrEnum
from typing import Generic, TypeVar

from algostream.marketdata.frames import ParsedFrame, build
from algostream.model.enums import BookUpdateKind, IntegrityKind
from algostream.model.ids import derive_id, split_instrument
from algostream.model.records import BookIntegrity, BookUpdate, Record

#: what a :class:`ChainSync` buffers until its snapshot
B = TypeVar("B")


class SyncState(StrEnum):
    BUFFERING = "BUFFERING"  # waiting for a usable snapshot
    LIVE = "LIVE"  # chain continuous since the last snapshot


def integrity_event(
    kind: IntegrityKind,
    cause: Record,
    detail: str,
    *,
    expected: int | None = None,
    received: int | None = None,
    instrument: str | None = None,
) -> BookIntegrity:
    """A :class:`BookIntegrity` caused by ``cause`` (same cause, same ``record_id``)."""
    inst = instrument or cause.instrument
    return build(
        BookIntegrity,
        instrument=inst,
        ts_event=cause.ts_event,
        ts_init=cause.ts_init,
        record_id=derive_id("integrity", kind.value, inst, cause.record_id),
        lineage_id=cause.record_id,
        kind=kind,
        detail=detail,
        expected_update_id=expected,
        received_update_id=received,
    )


class ChainSync(Generic[B]):
    """What the snapshot + diff procedures of a venue share: diffs are buffered until a
    usable snapshot, then published while they chain; a break is a GAP and a new snapshot
    (RESYNCED once live again). Subclasses say what chains (:class:`BinanceBookSync`,
    :class:`~algostream.marketdata.usdm_sync.UsdmBookSync`); a buffered item is what their
    :meth:`_replay` takes."""

    #: what the RESYNCED event names as the snapshot it resynced from
    SNAPSHOT_SOURCE = "snapshot"

    def __init__(self, instrument: str, *, max_buffer: int = 10_000) -> None:
        self.instrument = instrument
        self.state = SyncState.BUFFERING
        self._buffer: deque[B] = deque(maxlen=max_buffer)
        self._last: int = -1
        self._resyncing = False
        self.gaps = 0
        self.rejected_snapshots = 0

    @property
    def needs_snapshot(self) -> bool:
        """True while no usable snapshot has been supplied since start or the last gap."""
        return self.state is SyncState.BUFFERING

    @property
    def last_update_id(self) -> int | None:
        """The final update id the published chain has reached (``None`` while buffering)."""
        return self._last if self.state is SyncState.LIVE else None

    @property
    def buffered(self) -> int:
        """How many diffs wait for a snapshot."""
        return len(self._buffer)

    def reset(self) -> None:
        """Start over (e.g. a new subscription): buffer and wait for a snapshot."""
        self.state = SyncState.BUFFERING
        self._buffer.clear()
        self._last = -1

    def _replay(self, item: B) -> list[Record]:
        """A buffered diff through ``on_diff`` (at go-live)."""
        raise NotImplementedError

    def _go_live(self, snapshot: BookUpdate) -> list[Record]:
        out: list[Record] = [snapshot]
        self.state, self._last = SyncState.LIVE, snapshot.final_update_id
        pending, self._buffer = list(self._buffer), deque(maxlen=self._buffer.maxlen)
        for i, item in enumerate(pending):
            out += self._replay(item)
            if self.state is SyncState.BUFFERING:  # a gap inside the buffer
                self._buffer.extend(pending[i + 1 :])
                return out
        if self._resyncing:
            self._resyncing = False
            out.append(
                integrity_event(
                    IntegrityKind.RESYNCED,
                    snapshot,
                    f"resynced from {self.SNAPSHOT_SOURCE} lastUpdateId={self._last}",
                    received=self._last,
                )
            )
        return out

    def _check(self, update: BookUpdate, kind: BookUpdateKind) -> None:
        if update.instrument != self.instrument:
            raise ValueError(
                f"update.instrument={update.instrument!r}: this sync is for {self.instrument!r}"
            )
        if update.kind is not kind:
            raise ValueError(f"update.kind={update.kind.value}: expected {kind.value}")


class BinanceBookSync(ChainSync[BookUpdate]):
    """Snapshot + diff synchronisation of one Binance instrument (see module docstring).

    Feed every parsed ``depthUpdate`` to :meth:`on_diff` and every REST snapshot to
    :meth:`on_snapshot`; publish what they return, in order, to ``md.book`` /
    ``book.integrity``. Whenever :attr:`needs_snapshot` is true, fetch a snapshot.
    """

    def on_diff(self, update: BookUpdate) -> list[Record]:
        """One diff in; the diffs now safe to publish (and a GAP event if the chain broke)."""
        self._check(update, BookUpdateKind.DELTA)
        if self.state is SyncState.BUFFERING:
            self._buffer.append(update)
            return []
        if update.final_update_id <= self._last:
            return []
        if update.first_update_id > self._last + 1:
            return [self._gap(update)]
        self._last = update.final_update_id
        return [update]

    def on_snapshot(self, snapshot: BookUpdate) -> list[Record]:
        """A REST snapshot in; the snapshot and buffered diffs to publish, in order.

        Returns ``[]`` and keeps :attr:`needs_snapshot` true when the snapshot is older than
        the buffered diffs (fetch another). While live, a snapshot older than the chain is
        ignored and a newer one is published (later diffs continue from it).
        """
        self._check(snapshot, BookUpdateKind.SNAPSHOT)
        last = snapshot.final_update_id
        if self.state is SyncState.LIVE:
            if last < self._last:
                return []
            self._last = last
            return [snapshot]
        while self._buffer and self._buffer[0].final_update_id <= last:
            self._buffer.popleft()
        if self._buffer and self._buffer[0].first_update_id > last + 1:
            self.rejected_snapshots += 1
            return []
        return self._go_live(snapshot)

    def _replay(self, item: BookUpdate) -> list[Record]:
        return self.on_diff(item)

    def _gap(self, update: BookUpdate) -> BookIntegrity:
        expected = self._last + 1
        self.gaps += 1
        self.reset()
        self._resyncing = True
        self._buffer.append(update)
        return integrity_event(
            IntegrityKind.GAP,
            update,
            f"diff U={update.first_update_id} u={update.final_update_id} does not continue "
            f"the chain at {expected}: fetching a new snapshot",
            expected=expected,
            received=update.first_update_id,
        )


class CoinbaseSequenceTracker:
    """Coinbase ``sequence_num`` gap detection for one connection.

    :meth:`on_frame` returns what may be published: trades, book updates of products whose
    snapshot has been seen since the last gap, and integrity events. A jump in
    ``sequence_num`` marks every synced product out of sync (GAP each); their deltas are
    withheld until a new ``l2_data`` snapshot (RESYNCED). :meth:`take_resubscribe` names
    the products to resubscribe to ``level2`` (once per gap). Call :meth:`reset` on a new
    connection: the counter restarts there.
    """

    def __init__(self) -> None:
        self._last: int | None = None
        self._synced: set[str] = set()
        self._lost: set[str] = set()
        self._resubscribe: set[str] = set()
        self.gaps = 0
        self.withheld = 0

    @property
    def out_of_sync(self) -> frozenset[str]:
        """Instruments waiting for a snapshot after a gap."""
        return frozenset(self._lost)

    def reset(self) -> None:
        """A new connection: forget the counter and every product's sync."""
        self._last = None
        self._synced.clear()
        self._lost.clear()
        self._resubscribe.clear()

    def take_resubscribe(self) -> list[str]:
        """Product ids to resubscribe to ``level2`` after a gap (each returned once)."""
        products = sorted(split_instrument(i)[1] for i in self._resubscribe)
        self._resubscribe.clear()
        return products

    def on_frame(self, frame: ParsedFrame) -> list[Record]:
        """Check the frame's ``sequence_num``; return the records safe to publish."""
        seq = frame.sequence_num
        out: list[Record] = []
        if seq is None:
            return out
        if self._last is not None and seq != self._last + 1:
            out += self._gap(frame, self._last + 1, seq)
        self._last = seq
        for update in frame.book:
            out += self._book(update)
        out += frame.trades
        return out

    def _gap(self, frame: ParsedFrame, expected: int, received: int) -> list[Record]:
        self.gaps += 1
        cause = frame.raw
        events: list[Record] = []
        for inst in sorted(self._synced):
            events.append(
                integrity_event(
                    IntegrityKind.GAP,
                    cause,
                    f"sequence_num jumped from {expected - 1} to "
                    f"{received}: resubscribing for a snapshot",
                    expected=expected,
                    received=received,
                    instrument=inst,
                )
            )
        self._lost |= self._synced
        self._resubscribe |= self._synced
        self._synced.clear()
        return events

    def _book(self, update: BookUpdate) -> list[Record]:
        inst = update.instrument
        if update.kind is BookUpdateKind.SNAPSHOT:
            self._synced.add(inst)
            if inst in self._lost:
                self._lost.discard(inst)
                return [
                    update,
                    integrity_event(
                        IntegrityKind.RESYNCED,
                        update,
                        "resynced from level2 snapshot",
                        received=update.final_update_id,
                    ),
                ]
            return [update]
        if inst in self._synced:
            return [update]
        self.withheld += 1
        return []
