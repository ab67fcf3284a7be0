"""The market worker (book + bar agents) on the real recorded Binance.US capture.

The capture is synced offline (parse + documented snapshot/diff procedure), written to
``md.book``/``md.trades`` with a real producer, and the worker's ``book.top`` must agree
with a book built independently from the same updates; bars must match a local
aggregation; a malformed record lands in ``dlq`` and the worker keeps going.
"""

from __future__ import annotations

import pytest

from algostream.marketdata.bars import BarAggregator
from algostream.marketdata.binance import parse_frame
from algostream.model import Bar, BookTop, DeadLetter, TradeTick
from tests.kafka_kit import decoded, produce, read_until
from tests.unit.marketdata.marketdata_testkit import capture_events, replay, ws_lines


@pytest.mark.parametrize("client", ["rdkafka", "aiokafka"])
async def test_market_worker_on_recorded_capture(provisioned, supervisor, client) -> None:  # type: ignore[no-untyped-def]
    """The same outputs whichever client reads the inputs (``kafka.reader_client``)."""
    s = provisioned
    r = replay(capture_events())
    updates = [u for per_inst in r.published.values() for u in per_inst]
    trades = [t for line in ws_lines() for t in parse_frame(line.frame, line.recv_ns).trades]
    assert len(updates) > 100 and trades
    env = {"ALGOSTREAM__KAFKA__READER_CLIENT": client}
    supervisor.start(
        "market", "worker", "market", "--web-port", "0", "--metrics-port", "0", env=env
    )
    await produce(s, "md.book", [*updates[: len(updates) // 2], (b"BINANCE:X", b"\x00garbage")])
    await produce(s, "md.book", updates[len(updates) // 2 :])
    await produce(s, "md.trades", trades)

    last_id = {inst: ups[-1].final_update_id for inst, ups in r.published.items()}

    def all_caught_up(msgs) -> bool:  # type: ignore[no-untyped-def]
        seen = {t.instrument: t.update_id for t in decoded(msgs, BookTop)}  # type: ignore[attr-defined]
        return all(seen.get(i) == u for i, u in last_id.items())

    top_msgs = await read_until(s, "book.top", all_caught_up, timeout_s=120)
    tops = decoded(top_msgs, BookTop)
    assert all_caught_up_msgs(tops, last_id), supervisor.tail("market")
    # tops go out in producer batches: still on their instrument's partition (the producer's
    # choice for the key, as for md.book), in update order
    book_part = {m.key: m.partition for m in await read_until(s, "md.book", lambda m: False, 3)}
    assert all(m.partition == book_part[m.key] for m in top_msgs)
    for inst in last_id:
        ids = [t.update_id for t in tops if t.instrument == inst]  # type: ignore[attr-defined]
        assert ids == sorted(set(ids)), inst
    final = {t.instrument: t for t in tops if t.update_id == last_id[t.instrument]}  # type: ignore[attr-defined]
    for inst, top in final.items():
        book = r.books[inst]
        assert top.best_bid == book.best_bid()[0] and top.best_ask == book.best_ask()[0]  # type: ignore[attr-defined, index]
        assert top.bids[0] == book.best_bid() and top.asks[0] == book.best_ask()  # type: ignore[attr-defined]
    assert len(tops) == len(updates)  # one top per applied update, none lost or doubled

    letters = decoded(await read_until(s, "dlq", lambda m: len(m) >= 1), DeadLetter)
    assert letters[0].source_topic.endswith("md.book")  # type: ignore[attr-defined]

    local = {"1s": BarAggregator("1s"), "1m": BarAggregator("1m")}
    expected: dict[str, list[Bar]] = {"1s": [], "1m": []}
    for t in trades:
        for interval, agg in local.items():
            expected[interval] += agg.on_trade(t).bars
    for interval in ("1s", "1m"):
        want = expected[interval]
        enough = len(want)
        got = decoded(await read_until(s, f"bars.{interval}", lambda m, n=enough: len(m) >= n), Bar)
        assert [(b.instrument, b.start_ns, b.close, b.volume) for b in got] == [
            (b.instrument, b.start_ns, b.close, b.volume) for b in want
        ]  # type: ignore[attr-defined]
    assert supervisor.children["market"].alive
    assert f'"client":"{client}"' in supervisor.children["market"].log.read_text()  # its reader
    assert isinstance(trades[0], TradeTick)


def all_caught_up_msgs(tops, last_id) -> bool:  # type: ignore[no-untyped-def]
    seen = {t.instrument: t.update_id for t in tops}
    return all(seen.get(i) == u for i, u in last_id.items())
