"""Book synchronisation for Binance USDⓈ-M futures: the futures procedure, not spot's.

Binance's documented futures procedure for a local order book:

1. buffer diffs until a REST snapshot (``GET /fapi/v1/depth``) is supplied;
2. drop buffered diffs with ``u < lastUpdateId``;
3. the first diff applied must span the snapshot: ``U <= lastUpdateId <= u`` (if the first
   diff left starts after ``lastUpdateId`` the snapshot is too old: fetch another);
4. from then on each diff's ``pu`` must equal the previous diff's ``u``, else GAP: back to
   step 1.

Futures update ids are not contiguous (``U`` of a diff is usually far above the previous
``u + 1``), so spot's ``U <= prev_u + 1`` rule reports a false GAP on the first or second
diff of every symbol; ``pu`` is the chain. Diffs at or below the chain (``u <= prev u``,
the overlap of a rotated connection) are duplicates and dropped.

>>> sync = UsdmBookSync("BINANCE_USDM:BTCUSDT")
>>> sync.needs_snapshot
True
"""

from __future__ import annotations

from algostream.marketdata.sync import ChainSync, SyncState, integrity_event
from algostream.model.enums import BookUpdateKind, IntegrityKind
from algostream.model.records import BookIntegrity, BookUpdate, Record


class UsdmBookSync(ChainSync[tuple[BookUpdate, int]]):
    """Snapshot + ``pu``-chained diffs of one USD-M instrument (see the module docstring).

    Feed every parsed ``depthUpdate`` with its ``pu`` to :meth:`on_diff` and every REST
    snapshot to :meth:`on_snapshot`; publish what they return, in order, to ``md.book`` /
    ``book.integrity``. Whenever :attr:`needs_snapshot` is true, fetch a snapshot.
    """

    SNAPSHOT_SOURCE = "/fapi/v1/depth snapshot"

    def __init__(self, instrument: str, *, max_buffer: int = 10_000) -> None:
        super().__init__(instrument, max_buffer=max_buffer)
        self._spanning = False  # the next diff must span the snapshot, not chain on pu

    def reset(self) -> None:
        """Start over (e.g. a new connection): buffer and wait for a snapshot."""
        super().reset()
        self._spanning = False

    def on_diff(self, update: BookUpdate, prev_final_id: int) -> list[Record]:
        """One diff and its ``pu`` in; the diffs now safe to publish (or a GAP event)."""
        self._check(update, BookUpdateKind.DELTA)
        if self.state is SyncState.BUFFERING:
            self._buffer.append((update, prev_final_id))
            return []
        first, final = update.first_update_id, update.final_update_id
        if self._spanning:
            if final < self._last:
                return []  # older than the snapshot
            if first > self._last:
                return [
                    self._gap(
                        update,
                        prev_final_id,
                        f"(pu={prev_final_id}) does not span the snapshot at {self._last}",
                    )
                ]
            self._spanning = False
        elif final <= self._last:
            return []  # a duplicate (e.g. from the other connection of a rotation)
        elif prev_final_id != self._last:
            return [
                self._gap(
                    update, prev_final_id, f"has pu={prev_final_id}, not the chain's u={self._last}"
                )
            ]
        self._last = final
        return [update]

    def on_snapshot(self, snapshot: BookUpdate) -> list[Record]:
        """A REST snapshot in; the snapshot and buffered diffs to publish, in order.

        Returns ``[]`` and keeps :attr:`needs_snapshot` true when the snapshot is older than
        the buffered diffs (fetch another). While live, an older snapshot is ignored and a
        newer one is published (the next diff must span it).
        """
        self._check(snapshot, BookUpdateKind.SNAPSHOT)
        last = snapshot.final_update_id
        if self.state is SyncState.LIVE:
            if last < self._last:
                return []
            if last > self._last:  # ahead of the chain: the next diff must span it
                self._last, self._spanning = last, True
            return [snapshot]
        while self._buffer and self._buffer[0][0].final_update_id < last:
            self._buffer.popleft()
        if self._buffer and self._buffer[0][0].first_update_id > last:
            self.rejected_snapshots += 1
            return []
        return self._go_live(snapshot)

    def _go_live(self, snapshot: BookUpdate) -> list[Record]:
        self._spanning = True  # the first diff applied must span the snapshot
        return super()._go_live(snapshot)

    def _replay(self, item: tuple[BookUpdate, int]) -> list[Record]:
        return self.on_diff(*item)

    def _gap(self, update: BookUpdate, prev_final_id: int, why: str) -> BookIntegrity:
        expected = self._last
        self.gaps += 1
        self.reset()
        self._resyncing = True
        self._buffer.append((update, prev_final_id))
        return integrity_event(
            IntegrityKind.GAP,
            update,
            f"diff U={update.first_update_id} u={update.final_update_id} {why}: "
            "fetching a new snapshot",
            expected=expected,
            received=prev_final_id,
        )
