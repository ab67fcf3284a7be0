"""The book stage's new path gives the old path's records, record for record (issue 27).

The old path is frozen in ``book_reference.py`` (the sortedcontainers book and the
processor's general path, as they were). Both run on the same ``md.book`` streams: the
recorded Binance.US capture as the ingestor publishes it, and seeded random streams with
what the recording lacks (gaps, duplicates, crossed books, resnapshots, removals of the
best level, silences, a state restore mid-stream, a venue without contiguous ids). Every
output is compared as a record (field values) and as the bytes published.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import book_reference as old
import orjson
import pytest
from aiokafka import TopicPartition
from marketdata_testkit import capture_events, replay

from algostream.config import load_settings
from algostream.marketdata.processor import BookProcessor
from algostream.model import BookUpdate, BookUpdateKind, Record
from algostream.model.ids import child_id
from streams.book import BookStage
from streams.outbox import Outbox
from streams.state import StageState

INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "COINBASE:BTC-USD")


def recorded_md_book() -> list[BookUpdate]:
    r = replay(capture_events())
    return sorted((u for us in r.published.values() for u in us), key=lambda u: u.ts_init)


def assert_same(new: list[Record], ref: list[Record], where: str) -> None:
    assert [type(r) for r in new] == [type(r) for r in ref], where
    for a, b in zip(new, ref, strict=True):
        assert a == b, where
        assert a.encode() == b.encode(), where


def run_both(
    stream: list[BookUpdate], levels: int, *, stale_every: int = 0, restore_at: int = -1
) -> int:
    """Feed ``stream`` to both processors; returns how many tops were compared."""
    new, ref = BookProcessor(levels), old.BookProcessor(levels)
    tops = 0
    for n, update in enumerate(stream):
        now = update.ts_init + 7
        got, want = new.on_update(update, now), ref.on_update(update, now)
        assert_same(got, want, f"update {n}: {update!r}")
        tops += sum(type(r).__name__ == "BookTop" for r in want)
        if stale_every and n % stale_every == stale_every - 1:
            later = now + 10**9
            assert_same(new.check_stale(later, 10**8), ref.check_stale(later, 10**8), f"{n}")
        if n == restore_at:  # a hand-over: the next owner restores the new path's state
            moved = BookProcessor(levels)
            for inst in ref.instruments:
                assert new.state(inst) == ref.state(inst)
                moved.restore(new.state(inst))
            new = moved
    for inst in ref.instruments:
        assert new.state(inst) == ref.state(inst)
        book, ref_book = new.book(inst), ref.book(inst)
        assert book is not None and ref_book is not None
        assert book.bids() == ref_book.bids() and book.asks() == ref_book.asks()
    return tops


@pytest.mark.parametrize("levels", [1, 5, 10, 20])
def test_recorded_backlog_gives_the_same_book_top_records(levels: int) -> None:
    stream = recorded_md_book()
    assert len(stream) > 300
    assert run_both(stream, levels) == len(stream)


def _levels(rng: random.Random, mid: int, side: int, count: int) -> tuple[tuple[Decimal, ...], ...]:
    out = []
    for _ in range(count):
        # mostly near the top, sometimes deep; a few crossing the other side
        offset = rng.choice((0, 1, 1, 2, 3, 5, 8, 13, 40, 200)) - (rng.random() < 0.03) * 6
        price = Decimal(mid + side * offset) / 100
        qty = Decimal(0) if rng.random() < 0.3 else Decimal(rng.randint(1, 5000)) / 1000
        if rng.random() < 0.1:  # the same price written another way (trailing zeros)
            price = price.quantize(Decimal("0.0001"))
        out.append((price, qty))
    return tuple(out)


def random_stream(seed: int, n: int = 1500, *, big: bool = False) -> list[BookUpdate]:
    """``big``: some quantities with 30 significant digits and some prices with 20 decimals
    (past what the compiled path adds in fixed point: it must hand those back, or sum
    them as ``Decimal`` does)."""
    rng = random.Random(seed)
    last = {inst: 1000 for inst in INSTRUMENTS}
    mid = {inst: 10_000 for inst in INSTRUMENTS}
    out: list[BookUpdate] = []
    for i in range(n):
        inst = rng.choice(INSTRUMENTS)
        mid[inst] += rng.randint(-3, 3)
        roll = rng.random()
        if roll < 0.03 or last[inst] == 1000:
            kind, first = BookUpdateKind.SNAPSHOT, last[inst] + rng.randint(0, 40)
            final = first
            bids = _levels(rng, mid[inst] - 1, -1, rng.randint(0, 60))
            asks = _levels(rng, mid[inst] + 1, 1, rng.randint(0, 60))
        else:
            kind = BookUpdateKind.DELTA
            first = last[inst] + 1 + (rng.random() < 0.03) * rng.randint(1, 5)  # a gap
            first -= (rng.random() < 0.05) * rng.randint(1, 20)  # overlap or duplicate
            final = max(first, last[inst] + rng.randint(-2, 4))
            bids = _levels(rng, mid[inst] - 1, -1, rng.randint(0, 8))
            asks = _levels(rng, mid[inst] + 1, 1, rng.randint(0, 8))
        if big and rng.random() < 0.2:
            bids = tuple(
                (p, q * Decimal("123456789012.345678901234567") if rng.random() < 0.5 else q)
                for p, q in bids
            )
            asks = tuple((p + Decimal("1E-20") if rng.random() < 0.1 else p, q) for p, q in asks)
        last[inst] = max(last[inst], final)
        out.append(
            BookUpdate(
                instrument=inst,
                ts_event=i * 1000,
                ts_init=i * 1000 + 5,
                record_id=f"u{seed}-{i}",
                lineage_id=f"raw{i}",
                kind=kind,
                bids=bids,
                asks=asks,
                first_update_id=first,
                final_update_id=final,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(6))
def test_random_streams_give_the_same_records(seed: int) -> None:
    stream = random_stream(seed)
    tops = run_both(stream, 1 + seed * 3, stale_every=97, restore_at=700)
    assert tops > len(stream) // 3  # the streams are in sync most of the time


# --------------------------------------------------------------------------- the book stage
# The same streams through ``BookStage.handle`` (``md.book`` payload bytes in; the
# ``book.top`` / ``book.integrity`` bytes and the book-state writes out), on the pure-Python
# path and on the compiled one (``algostream/marketdata/_fastbook.pyx``, which takes the
# plain deltas and hands the rest back to the processor). Their outputs are compared with
# the frozen old processor's, byte for byte, and their state writes with each other.


class _Edge:
    """The parts of ``streams.edge.Edge`` the book stage calls (no Kafka)."""

    def __init__(self, listen: bool = False) -> None:
        self.producer = SimpleNamespace(_message_accumulator=SimpleNamespace(_compression_type=0))
        self.partitions = SimpleNamespace(get=lambda topic, key: 0)
        self.dead: list[str] = []
        self.listen = listen  # a stage of this worker takes book.top in-process
        self.delivered: list[tuple[str, Any]] = []

    def aiokafka_producer(self) -> Any:
        return self.producer

    def topic(self, name: str) -> Any:
        return SimpleNamespace(get_topic_name=lambda: f"algostream.{name}")

    def count_in(self, agent: str, topic: str, n: int = 1) -> None:
        pass

    def count_out(self, topic: str, n: int = 1) -> None:
        pass

    def listens(self, topic: str) -> bool:
        return self.listen

    async def deliver(self, topic: str, record: Any) -> None:
        self.delivered.append((topic, record))

    async def dead_letter_raw(self, msg: Any, ts_ms: int, exc: BaseException, agent: str) -> None:
        self.dead.append(f"{msg.value[:60]!r}: {exc}")


class _Table:
    """``DirectTable``'s ``get``/``items``/``stage`` over a dict (JSON values)."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def items(self) -> Any:
        return self.data.items()

    def stage(self, key: str, value: Any) -> tuple[str, bytes, bytes | None]:
        if value is None:
            self.data.pop(key, None)
            return "book-state-changelog", key.encode(), None
        self.data[key] = value
        return "book-state-changelog", key.encode(), orjson.dumps(value)


def _stage(levels: int, compiled: bool, listen: bool = False) -> BookStage:
    st = object.__new__(BookStage)
    st.edge = _Edge(listen)  # type: ignore[assignment]
    st.md = load_settings(env={}).market_data.model_copy(update={"book_top_levels": levels})
    st.state = StageState(_Table(), st.edge, 1)  # type: ignore[arg-type]
    st.table = st.state.table
    # each path whatever ALGOSTREAM_PURE_PYTHON says (compiled: fails where not built)
    from streams.book import _DELETE, _Pending

    def new_store() -> Any:
        store = BookStage.new_store(st)
        store.proc.fast = None
        if compiled:
            from algostream.marketdata._fastbook import FastBooks

            store.proc.fast = FastBooks(store.proc, store, _Pending, _DELETE)
        return store

    st.new_store = new_store  # type: ignore[method-assign]
    st.store = st.new_store()
    return st


def _payloads(stream: list[BookUpdate], seed: int) -> list[bytes]:
    """Each update as the ingestor writes it; with ``seed``, some in another JSON layout
    (the compiled path hands those to the Python path) and a few malformed ones."""
    rng = random.Random(seed)
    out = []
    for update in stream:
        raw = update.encode()
        roll = rng.random() if seed >= 0 else 1.0
        if roll < 0.04:  # spaces: valid JSON, not the encoder's form
            raw = json.dumps(orjson.loads(raw), separators=(", ", ": ")).encode()
        elif roll < 0.05:  # a bad price (or kind): a dead letter on both paths
            bad = raw.replace(b'"bids":[["', b'"bids":[["-', 1)
            out.append(bad if bad != raw else raw.replace(b'"kind":"', b'"kind":"X', 1))
        out.append(raw)
    return out


def run_stage(
    stream: list[BookUpdate],
    levels: int,
    compiled: bool,
    *,
    seed: int = -1,
    stale_every: int = 0,
    forget_at: int = -1,
    delivered: list[tuple[str, Any]] | None = None,
) -> tuple[list[list[tuple[str, bytes, bytes | None]]], list[str], dict[str, Any]]:
    """``stream`` through the book stage in random batches: per batch, what it produced
    in order (topic, key, value); the dead letters; the table at the end. ``now`` is the
    batch's last ``ts_init`` + 7 (the clock is stood in). ``delivered``: a stage of the
    worker listens; the records it is given are appended there."""
    rng = random.Random(seed)
    st = _stage(levels, compiled, delivered is not None)
    payloads = _payloads(stream, seed)
    recs = [SimpleNamespace(value=p, timestamp=0) for p in payloads]
    tp = TopicPartition("algostream.md.book", 0)
    batches: list[list[tuple[str, bytes, bytes | None]]] = []
    now = [0]
    real_add = Outbox.add

    def add(self: Outbox, topic: str, key: Any, value: Any, partition: int) -> None:
        batches[-1].append((topic, key, value))

    Outbox.add = add  # type: ignore[method-assign]
    real_clock = time.time_ns
    time.time_ns = lambda: now[0]
    try:
        i = 0
        while i < len(recs):
            chunk = recs[i : i + rng.randint(1, 60)]
            now[0] = _ts_init(chunk[-1].value) + 7
            batches.append([])
            asyncio.run(st.handle({tp: chunk}))
            i += len(chunk)
            n = len(batches)
            if stale_every and n % stale_every == 0:
                later = now[0] + 10**9
                stale = st.store.proc.check_stale(later, 10**8)
                batches[-1] += [("stale", r.key.encode(), r.encode()) for r in stale]
            if n == forget_at:  # a hand-over: restored from the table at the next update
                st.forget()
    finally:
        Outbox.add = real_add  # type: ignore[method-assign]
        time.time_ns = real_clock
    if delivered is not None:
        delivered += st.edge.delivered  # type: ignore[attr-defined]
    return batches, st.edge.dead, dict(st.table.data)  # type: ignore[attr-defined]


def _ts_init(payload: bytes) -> int:
    try:
        return int(orjson.loads(payload)["ts_init"])
    except Exception:
        return 0


def oracle_batches(
    stream: list[BookUpdate], levels: int, stage_batches: list[list[Any]], seed: int, stale: int
) -> list[list[tuple[str, bytes, bytes]]]:
    """What the old processor publishes for the same batches (by ``now`` per batch)."""
    ref = old.BookProcessor(levels)
    out: list[list[tuple[str, bytes, bytes]]] = []
    rng = random.Random(seed)
    i, n = 0, 0
    payloads = _payloads(stream, seed)
    good = [p for p in payloads if _decodes(p)]
    assert len(good) == len(stream)
    while i < len(payloads):
        size = rng.randint(1, 60)
        chunk = payloads[i : i + size]
        now = _ts_init(chunk[-1]) + 7
        batch: list[tuple[str, bytes, bytes]] = []
        for p in chunk:
            if not _decodes(p):
                continue
            update = BookUpdate.decode(p)
            for r in ref.on_update(update, now):
                topic = "book.top" if type(r).__name__ == "BookTop" else "book.integrity"
                batch.append((f"algostream.{topic}", r.key.encode(), r.encode()))
        i += len(chunk)
        n += 1
        if stale and n % stale == 0:
            batch += [
                ("stale", r.key.encode(), r.encode()) for r in ref.check_stale(now + 10**9, 10**8)
            ]
        out.append(batch)
    assert n == len(stage_batches)
    return out


def _decodes(payload: bytes) -> bool:
    try:
        BookUpdate.decode(payload)
    except Exception:
        return False
    return True


def _published(batches: list[list[tuple[str, bytes, bytes | None]]]) -> list[list[Any]]:
    return [[r for r in b if not r[0].startswith("book-state")] for b in batches]


def _writes(batches: list[list[tuple[str, bytes, bytes | None]]]) -> list[dict[bytes, Any]]:
    """Each batch's state writes (key -> value; the order of distinct keys within a batch
    is not kept: the pure path's snapshot diff iterates a set)."""
    return [{k: v for t, k, v in b if t.startswith("book-state")} for b in batches]


MODES = [pytest.param(False, id="pure"), pytest.param(True, id="compiled")]


@pytest.mark.parametrize("compiled", MODES)
@pytest.mark.parametrize("levels", [1, 10, 20])
def test_stage_on_the_recorded_backlog_publishes_the_old_bytes(compiled: bool, levels: int) -> None:
    stream = recorded_md_book()
    got, dead, table = run_stage(stream, levels, compiled)
    assert not dead
    want = oracle_batches(stream, levels, got, -1, 0)
    assert _published(got) == want
    assert sum(len(b) for b in want) == len(stream)
    if compiled:
        pure, _, pure_table = run_stage(stream, levels, False)
        assert _writes(got) == _writes(pure) and table == pure_table


@pytest.mark.parametrize("compiled", MODES)
@pytest.mark.parametrize("seed", range(4))
def test_stage_on_random_streams_publishes_the_old_bytes(compiled: bool, seed: int) -> None:
    stream = random_stream(seed)
    levels = 1 + seed * 3
    got, dead, table = run_stage(stream, levels, compiled, seed=seed, stale_every=11)
    assert len(dead) == sum(not _decodes(p) for p in _payloads(stream, seed)) > 0
    assert _published(got) == oracle_batches(stream, levels, got, seed, 11)
    pure, pure_dead, pure_table = run_stage(stream, levels, False, seed=seed, stale_every=11)
    assert dead == pure_dead
    assert _writes(got) == _writes(pure) and table == pure_table


@pytest.mark.parametrize("compiled", MODES)
@pytest.mark.parametrize("seed", [0, 5])
def test_stage_hands_its_own_stages_the_old_records(compiled: bool, seed: int) -> None:
    """Where a stage of the worker takes book.top in-process, the records it gets equal
    the old processor's, field by field (and encode to the bytes published)."""
    stream = random_stream(seed, big=seed == 5)
    got: list[tuple[str, Any]] = []
    batches, _, _ = run_stage(stream, 5, compiled, seed=seed, delivered=got)
    want = [r for b in oracle_batches(stream, 5, batches, seed, 0) for r in b]
    assert [(f"algostream.{t}", r.key.encode(), r.encode()) for t, r in got] == want
    for (topic, record), (_, _, raw) in zip(got, want, strict=True):
        assert record == type(record).decode(raw), topic
    assert sum(t == "book.top" for t, _ in got) > len(stream) // 3


@pytest.mark.parametrize("compiled", MODES)
def test_stage_with_quantities_past_fixed_point_publishes_the_old_bytes(compiled: bool) -> None:
    stream = random_stream(5, big=True)
    got, _, table = run_stage(stream, 10, compiled, seed=5)
    assert _published(got) == oracle_batches(stream, 10, got, 5, 0)
    pure, _, pure_table = run_stage(stream, 10, False, seed=5)
    assert _writes(got) == _writes(pure) and table == pure_table


def test_compiled_record_id_is_child_id() -> None:
    """The compiled path's BLAKE2b gives ``child_id`` for ids of every length."""
    from algostream.marketdata import _fastbook as fastbook  # (built: `make native`)

    rng = random.Random(1)
    for n in range(0, 300):
        parent = "".join(rng.choice("0123456789abcdef-_:") for _ in range(n))
        assert fastbook.child_id(parent.encode()) == child_id("book.top", parent)


@pytest.mark.parametrize("seed", range(3))
def test_stage_hand_over_mid_stream_compiled_equals_pure(seed: int) -> None:
    """A rebalance mid-stream: both stages restore the books from the table they wrote,
    and go on publishing and writing the same bytes."""
    stream = random_stream(seed + 10)
    args = {"seed": seed, "stale_every": 13, "forget_at": 12}
    got, dead, table = run_stage(stream, 7, True, **args)  # type: ignore[arg-type]
    pure, pure_dead, pure_table = run_stage(stream, 7, False, **args)  # type: ignore[arg-type]
    assert _published(got) == _published(pure)
    assert _writes(got) == _writes(pure) and table == pure_table and dead == pure_dead
