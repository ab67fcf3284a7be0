"""The book stage's CPU per update, in one process, with Kafka stood in (issue 27 item 2).

``BookStage.handle`` (``streams/book.py``) runs on batches of 500 ``md.book`` payloads as
the market worker's reader hands them over: decode each record, ``BookProcessor`` (apply,
chain and crossed checks, the ``book.top`` record), encode the top into aiokafka's real
producer batch (``Outbox``: ``BatchBuilder.append`` with the send-time header), the
book-state level writes staged with the table's JSON codec, the in-process delivery and
the per-update timing histogram. What is stood in: the consumer (payloads are already
bytes) and the producer's network send. So this is the stage's own work per update; the
worker's figure in the throughput table adds aiokafka's fetch and produce.

Inputs: the recorded Binance.US capture as the ingestor publishes it on ``md.book``
(4 instruments, 336 updates, replayed with a fresh stage each time) and the seeded
synthetic market's ``md.book`` (2 instruments, deeper books, ~20,000 updates).

``python -m bench.book_stage`` prints the table, each input on the compiled book path
(``algostream/marketdata/_fastbook.pyx``) and on the pure-Python one; ``--profile`` adds
cProfile's top rows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition
from faust.serializers import codecs

from algostream.config import Settings, load_settings
from algostream.marketdata import native
from algostream.model import BookUpdate
from algostream.model.ids import split_instrument
from streams.book import BookStage
from streams.state import DirectTable, StageState

BATCH = 500


class _Producer:
    """aiokafka's producer as the outbox uses it: its accumulator's compression setting
    and ``send_batch`` (here: the batch is closed, as aiokafka does before sending)."""

    def __init__(self) -> None:
        self._message_accumulator = SimpleNamespace(_compression_type=0)
        self.records = 0

    async def send_batch(self, builder: Any, topic: str, *, partition: int) -> Any:
        builder.close()
        builder._build()
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


class _Partitions:
    def get(self, topic: str, key: bytes) -> int:
        return 0


class _Edge:
    """The parts of ``streams.edge.Edge`` the book stage calls."""

    def __init__(self) -> None:
        self.producer = _Producer()
        self.partitions = _Partitions()

    def aiokafka_producer(self) -> Any:
        return self.producer

    def topic(self, name: str) -> Any:
        return SimpleNamespace(get_topic_name=lambda: f"algostream.{name}")

    def count_in(self, agent: str, topic: str, n: int = 1) -> None:
        pass

    def count_out(self, topic: str, n: int = 1) -> None:
        pass

    def check_delivery(self, fut: Any) -> None:
        pass

    def listens(self, topic: str) -> bool:
        return False  # the market worker alone: no stage of its own takes book.top

    async def deliver(self, topic: str, record: Any) -> None:
        pass

    async def dead_letter_raw(self, msg: Any, ts_ms: int, exc: BaseException, agent: str) -> None:
        raise AssertionError(f"a recorded update did not decode: {exc}")


class _Table:
    """A ``DirectTable`` without its Faust app: its own ``stage`` (the JSON codecs, the
    cached keys) over a dict (what the memory store holds)."""

    RAW_KEYS = DirectTable.RAW_KEYS
    stage = DirectTable.stage

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self._codecs = (codecs.get_codec("json"), codecs.get_codec("json"))
        self._raw_keys: dict[str, bytes] = {}
        self._changelog_name = "book-state-changelog"

    def get(self, key: str) -> Any:
        return self.data.get(key)

    def items(self) -> Any:
        return self.data.items()


def stage(settings: Settings, compiled: bool = True) -> BookStage:
    """A book stage over the stand-ins; ``compiled=False``: its pure-Python path (as with
    ``ALGOSTREAM_PURE_PYTHON=1``)."""
    st = object.__new__(BookStage)
    st.edge, st.md = _Edge(), settings.market_data  # type: ignore[assignment]
    st.state = StageState(_Table(), st.edge, 1)
    st.table = st.state.table
    st.store = st.new_store()
    if not compiled:
        st.store.proc.fast = None
    return st


def batches(updates: list[BookUpdate]) -> list[dict[TopicPartition, list[Any]]]:
    tp = TopicPartition("algostream.md.book", 0)
    recs = [SimpleNamespace(value=u.encode(), timestamp=u.ts_init // 1_000_000) for u in updates]
    return [{tp: recs[i : i + BATCH]} for i in range(0, len(recs), BATCH)]


def recorded() -> list[BookUpdate]:
    from bench.peers import recorded_updates

    return recorded_updates()


def synthetic(n: int = 20_000) -> list[BookUpdate]:
    from algostream.backtest.engine import BacktestEngine
    from algostream.backtest.synthetic import synthetic_frames

    out = BacktestEngine(Settings()).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, n))
    return [r for t, r in out.outputs if t == "md.book" and isinstance(r, BookUpdate)]


def cpu_us_per_update(
    updates: list[BookUpdate], min_updates: int = 40_000, runs: int = 5, compiled: bool = True
) -> float:
    """Best of ``runs``: CPU µs per update of ``BookStage.handle`` (a fresh stage per pass
    over ``updates``, passes until ``min_updates``)."""
    settings = load_settings(env={})
    work = batches(updates)
    passes = max(1, min_updates // len(updates))

    async def once() -> float:
        start = time.process_time()
        for _ in range(passes):
            st = stage(settings, compiled)
            for batch in work:
                await st.handle(batch)
        return (time.process_time() - start) / (passes * len(updates)) * 1e6

    return min(asyncio.run(once()) for _ in range(runs))


def instruments(updates: list[BookUpdate]) -> int:
    return len({split_instrument(u.instrument)[1] for u in updates})


def main() -> list[str]:
    rows: list[tuple[str, Callable[[], list[BookUpdate]]]] = [
        ("recorded Binance.US capture", recorded),
        ("synthetic market", synthetic),
    ]
    lines = [
        "| md.book input | updates | instruments | path | CPU µs / update | updates / CPU second |",
        "|---|---|---|---|---|---|",
    ]
    paths = [("compiled", True), ("pure Python", False)]
    if native.fast_books_type() is None:  # not built: the pure path only, said so
        paths = [("pure Python (compiled path not built)", False)]
    for name, make in rows:
        updates = make()
        for path, compiled in paths:
            us = cpu_us_per_update(updates, compiled=compiled)
            lines.append(
                f"| {name} | {len(updates):,} | {instruments(updates)} | {path} | {us:.2f} "
                f"| {1e6 / us:,.0f} |"
            )
    return lines


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", action="store_true", help="cProfile the synthetic run")
    ap.add_argument("--only", choices=("recorded", "synthetic"), help="one input only")
    ap.add_argument("--pure", action="store_true", help="with --only: the pure-Python path")
    args = ap.parse_args()
    if args.profile:
        import cProfile
        import pstats

        ups = synthetic()
        cProfile.run("cpu_us_per_update(ups, runs=1)", "/tmp/book_stage.prof")
        pstats.Stats("/tmp/book_stage.prof").sort_stats("tottime").print_stats(30)
    elif args.only:
        ups = recorded() if args.only == "recorded" else synthetic()
        print(f"{args.only}: {cpu_us_per_update(ups, compiled=not args.pure):.2f} µs / update")
    else:
        print("\n".join(main()))
