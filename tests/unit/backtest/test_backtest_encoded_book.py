"""md.book records given to the engine as their bytes (a replay from the topics or a
capture file) give exactly the outputs of the same records given decoded: through the
book stage's compiled path, and through the Python path (ALGOSTREAM_PURE_PYTHON)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from algostream.backtest.capture import (
    CaptureEntry,
    load_recorded_binance_capture,
    write_capture,
)
from algostream.backtest.engine import BacktestEngine, EncodedBook, EngineInput, Outputs
from algostream.backtest.run import records_from_capture
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings, load_settings
from algostream.marketdata import native
from algostream.model.records import BookUpdate, RawFrame, Record

CAPTURE = Path(__file__).resolve().parents[2] / "data" / "binance-us-capture"
SYMBOLS = '["COMPUSDT","CRVUSDT","OMGBUSD","ZRXUSDT"]'


def _compiled() -> Any:
    try:
        from algostream.marketdata._fastbook import FastBooks
    except ImportError:
        pytest.skip("the compiled book path is not built")
    return FastBooks


@pytest.fixture(params=["compiled", "pure"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each book path, whatever ALGOSTREAM_PURE_PYTHON says."""
    cls = _compiled() if request.param == "compiled" else None
    monkeypatch.setattr(native, "_loaded", [cls])
    return str(request.param)


def _synthetic() -> tuple[Settings, list[Record]]:
    settings = Settings()
    raw = BacktestEngine(settings).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 3000))
    return settings, [r for t, r in raw.outputs if t in ("md.book", "md.trades")]


def _recorded() -> tuple[Settings, list[Record]]:
    settings = load_settings(env={"ALGOSTREAM__MARKET_DATA__SYMBOLS": SYMBOLS})
    entries = load_recorded_binance_capture(
        CAPTURE / "BINANCE_US.ws.1.0", CAPTURE / "BINANCE_US.http.0.0"
    )
    raw = BacktestEngine(settings).run([e.record(RawFrame) for e in entries])
    return settings, [r for t, r in raw.outputs if t in ("md.book", "md.trades")]


def _encoded(records: list[Record]) -> list[EngineInput]:
    return [EncodedBook(r.ts_event, r.encode()) if type(r) is BookUpdate else r for r in records]


def _run(settings: Settings, inputs: list[EngineInput]) -> BacktestEngine:
    engine = BacktestEngine(settings)
    engine.run(inputs)
    engine.finish(close_positions=True)
    return engine


def _assert_same(a: list[tuple[str, Record]], b: list[tuple[str, Record]]) -> None:
    assert len(a) == len(b)
    for i, ((ta, ra), (tb, rb)) in enumerate(zip(a, b, strict=True)):
        assert (i, ta, type(ra)) == (i, tb, type(rb))
        assert ra == rb, (i, ta)
        assert ra.encode() == rb.encode(), (i, ta)


@pytest.mark.parametrize("market", [_synthetic, _recorded], ids=["synthetic", "recorded"])
def test_bytes_and_records_give_the_same_outputs(path: str, market: Any) -> None:
    settings, records = market()
    books = sum(type(r) is BookUpdate for r in records)
    assert books > 100
    from_records = _run(settings, records)
    from_bytes = _run(settings, _encoded(records))
    # the compiled path took the bytes (and only where it is built)
    assert (from_bytes.book.fast is not None) == (path == "compiled")
    outputs = from_bytes.result.outputs
    assert isinstance(outputs, Outputs)
    if path == "compiled":
        # the md.book outputs are still bytes, not decoded, until read
        assert len(outputs.lazy) > books // 2
        assert from_bytes.result.counts == from_records.result.counts
        assert from_bytes.result.fills == from_records.result.fills
        assert len(outputs.lazy) > books // 2  # (other topics read without decoding)
    _assert_same(from_records.result.outputs, outputs)
    assert not outputs.lazy
    assert all(type(r) is BookUpdate for r in from_bytes.result.on("md.book"))


def test_a_capture_file_runs_its_md_book_from_bytes(path: str, tmp_path: Path) -> None:
    settings, records = _synthetic()
    entries = [
        CaptureEntry.from_kafka(
            "md.book" if type(r) is BookUpdate else "md.trades",
            0,
            n,
            r.ts_event // 1_000_000,
            r.instrument.encode(),
            r.encode(),
        )
        for n, r in enumerate(records)
    ]
    file = tmp_path / "run.jsonl.gz"
    write_capture(file, [entries], from_ns=None, to_ns=None, topics=["md.book", "md.trades"])
    inputs = records_from_capture(file)
    assert sum(type(i) is EncodedBook for i in inputs) == sum(
        type(r) is BookUpdate for r in records
    )
    engine = _run(settings, inputs)
    if path == "compiled":  # (the capture's bytes are in the form the compiled path takes)
        assert len(engine.result.outputs.lazy) > len(inputs) // 2  # type: ignore[attr-defined]
    _assert_same(_run(settings, list(records)).result.outputs, engine.result.outputs)


def test_a_run_leaves_nothing_frozen() -> None:
    settings, records = _synthetic()
    assert gc.get_freeze_count() == 0
    _run(settings, _encoded(records))
    assert gc.get_freeze_count() == 0


def test_outputs_decode_on_every_read() -> None:
    _, records = _synthetic()
    update = next(r for r in records if type(r) is BookUpdate)
    for read in (
        lambda o: list(o),
        lambda o: o[0],
        lambda o: o == [("md.book", update)],
        lambda o: repr(o),
        lambda o: o.copy(),
    ):
        out = Outputs()
        out.lazy.append(0)
        out.append(("md.book", EncodedBook(update.ts_event, update.encode())))
        read(out)
        assert not out.lazy
        assert list.__getitem__(out, 0) == ("md.book", update)
