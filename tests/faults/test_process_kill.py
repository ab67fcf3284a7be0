"""kill -9 of the ingestor and of the market (book) worker mid-stream, then a restart
(simulator, ingestor and market worker as real processes on the real broker).

What is guaranteed, and asserted exactly:

* ingestor killed: the exchange has no trade backfill on its stream, so trades made while
  no ingestor runs (and records it had not flushed yet) are not on ``md.trades``. What
  is promised is that ``md.trades`` never has a duplicate or a reordering and that the
  only hole in the trade ids is the one at the restart; ``md.book`` stays a rebuildable
  chain: the hole in the update ids is bridged by the new ingestor's SNAPSHOT; the book
  worker reports the dead feed (STALE, within ``stale_after_ms``) and the new ingestor's
  RESYNCED clears it; the worker's book equals the simulator's true book again.
* book worker killed: the md.* topics are untouched (no hole at all); the restarted
  worker restores its book from the ``book-state`` table and continues the chain without
  a snapshot (no GAP, tops at once); a top published twice (redelivery after the kill)
  is the same record; the book equals the simulator's.
"""

from __future__ import annotations

import time
from typing import Any

from algostream.model import BookTop, IntegrityKind
from algostream.model.enums import BookUpdateKind
from tests.faults.feed_kit import (
    INSTRUMENT,
    assert_book_is_true,
    chain_breaks,
    holes,
    integrity,
    logs,
    md_book,
    md_trades,
    of,
    poll,
    start_ingest,
    start_pipeline,
    start_worker,
    trade_ids,
    wait_live,
)
from tests.kafka_kit import decoded, read_until

STALE_AFTER_MS = 1000


async def book_tops(s: Any, timeout_s: float = 1.0) -> list[BookTop]:
    return of(decoded(await read_until(s, "book.top", lambda m: False, timeout_s), BookTop))


async def test_kill_9_ingestor_then_restart(provisioned: Any, supervisor: Any) -> None:
    s = provisioned
    p = start_pipeline(
        supervisor,
        ("market",),
        env={"ALGOSTREAM__MARKET_DATA__STALE_AFTER_MS": str(STALE_AFTER_MS)},
    )
    await wait_live(s, supervisor)
    await poll(lambda: md_trades(s, 0.5), 30, "trades on md.trades")

    supervisor.kill("ingest")  # SIGKILL mid-stream: unflushed records are gone with it
    t_kill = time.time_ns()
    book_before = await md_book(s)
    trades_before = trade_ids(await md_trades(s))

    # the book worker notices the dead feed
    def stale(events: Any) -> bool:
        return any(e.kind is IntegrityKind.STALE and e.ts_init >= t_kill for e in events)

    events = await integrity(s, stale, timeout_s=30)
    first = next(e for e in events if e.kind is IntegrityKind.STALE and e.ts_init >= t_kill)
    assert (first.ts_init - t_kill) / 1e6 <= STALE_AFTER_MS + 1500, first

    start_ingest(supervisor, p)
    t_restart = time.time_ns()

    def resynced(events: Any) -> bool:
        return any(e.kind is IntegrityKind.RESYNCED and e.ts_init >= t_restart for e in events)

    events = await integrity(s, resynced, timeout_s=60)
    assert resynced(events), ([e.kind for e in events[-5:]], logs(supervisor))

    async def trades_after() -> bool:
        return len(await md_trades(s, 0.5)) > len(trades_before) + 5

    await poll(trades_after, 30, "trades from the new ingestor")
    await assert_book_is_true(s, p, supervisor)

    # md.book: one rebuildable chain; the restart's hole is bridged by a snapshot
    book = await md_book(s)
    assert book[: len(book_before)] == book_before
    assert not chain_breaks(book), chain_breaks(book)
    new = book[len(book_before) :]
    assert new and new[0].kind is BookUpdateKind.SNAPSHOT, new[:1]
    assert new[0].final_update_id >= book_before[-1].final_update_id
    # md.trades: no duplicate, no reordering, and the only hole is at the restart
    ids = trade_ids(await md_trades(s))
    assert ids == sorted(set(ids)), "a trade published twice or out of order"
    assert ids[: len(trades_before)] == trades_before
    gaps = holes(ids)
    assert all(lo == trades_before[-1] + 1 for lo, _ in gaps) and len(gaps) <= 1, gaps
    # the last word on the instrument is the new ingestor's RESYNCED
    events = await integrity(s, lambda e: False, timeout_s=1)
    assert events[-1].kind is IntegrityKind.RESYNCED, [e.kind for e in events[-4:]]
    assert not supervisor.dead(), logs(supervisor)


async def test_kill_9_book_worker_then_restart(provisioned: Any, supervisor: Any) -> None:
    s = provisioned
    p = start_pipeline(supervisor, ("market",))
    await wait_live(s, supervisor)

    async def some_tops() -> bool:
        return len(await book_tops(s, 0.5)) > 40

    await poll(some_tops, 30, "book tops")
    supervisor.kill("market")  # SIGKILL: no final commit, no table flush
    t_kill = time.time_ns()
    tops_before = await book_tops(s)
    snapshots = [u for u in await md_book(s) if u.kind is BookUpdateKind.SNAPSHOT]
    start_worker(supervisor, p, "market")

    async def tops_after() -> bool:
        return any(t.ts_init > t_kill for t in await book_tops(s, 0.5))

    await poll(tops_after, 60, "book tops from the restarted worker")
    await assert_book_is_true(s, p, supervisor)
    # and it goes on applying updates past stale_after_ms (a restored book that took the
    # backlog, then no update, went STALE with the feed alive: the compose test's restart)
    t_later = time.time_ns() + 3 * s.market_data.stale_after_ms * 1_000_000

    async def tops_later() -> bool:
        return any(t.ts_init > t_later for t in await book_tops(s, 0.5))

    await poll(tops_later, 60, "book tops well after the restart")

    # the worker continued from its table: no snapshot was needed, no gap was seen
    book = await md_book(s)
    assert [u for u in book if u.kind is BookUpdateKind.SNAPSHOT] == snapshots
    assert not chain_breaks(book), chain_breaks(book)
    events = await integrity(s, lambda e: False, timeout_s=1)
    assert not [e for e in events if e.ts_init >= t_kill], [
        (e.kind, e.detail) for e in events if e.ts_init >= t_kill
    ]
    # each update id has one top; one published twice (before and after) is the same record
    tops = await book_tops(s)
    by_update: dict[int, set[str]] = {}
    for t in tops:
        by_update.setdefault(t.update_id, set()).add(t.record_id)
    assert all(len(ids) == 1 for ids in by_update.values())
    after = [t.update_id for t in tops if t.ts_init > t_kill]
    assert after == sorted(after) and after[-1] > tops_before[-1].update_id
    # the md.* topics did not notice: no trade hole
    ids = trade_ids(await md_trades(s))
    assert ids == sorted(set(ids)) and not holes(ids), holes(ids)
    assert INSTRUMENT in {t.instrument for t in tops}
    assert not supervisor.dead(), logs(supervisor)
