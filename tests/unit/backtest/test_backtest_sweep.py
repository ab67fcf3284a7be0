"""Parameter sweeps and walk-forward over the engine: the grid, parallel determinism, the
ranked table and heatmap, windows measured on slices of whole runs."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from functools import cache
from pathlib import Path

import pytest
from PIL import Image

from algostream.backtest.errors import SweepError
from algostream.backtest.report import ReportInputs
from algostream.backtest.sweep import (
    apply_params,
    grid,
    parse_walk_forward,
    rank,
    run_grid,
    run_point,
    walk_forward,
    window_report,
    write_heatmap,
    write_table,
)
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings
from algostream.model.records import RawFrame

SPECS = ["signal.rsi_window=4,6", "signal.rsi_oversold=25,35"]


@cache
def frames() -> tuple[RawFrame, ...]:
    return tuple(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 6_000))


def test_unknown_parameter_is_named_with_a_suggestion() -> None:
    with pytest.raises(
        SweepError, match=r"'signal.rsi_period' is not a setting.*signal.rsi_window"
    ):
        grid(Settings(), ["signal.rsi_period=6,10,14"])
    with pytest.raises(SweepError, match=r"'nosuch\.key' is not a setting"):
        grid(Settings(), ["nosuch.key=1"])
    with pytest.raises(SweepError, match=r"expected section\.key=value1"):
        grid(Settings(), ["signal.rsi_window"])


def test_a_bad_value_is_named_with_the_settings_rule() -> None:
    with pytest.raises(SweepError, match=r"signal.rsi_window='1'.*greater than or equal to 2"):
        grid(Settings(), ["signal.rsi_window=6,1"])


def test_the_grid_is_the_product_with_typed_values() -> None:
    points = grid(Settings(), SPECS)
    assert points == [
        {"signal.rsi_window": w, "signal.rsi_oversold": o} for w in (4, 6) for o in (25.0, 35.0)
    ]
    assert apply_params(Settings(), points[1]).signal.rsi_oversold == 35.0


def test_parallel_runs_equal_serial_runs_point_for_point() -> None:
    points = grid(Settings(), SPECS)
    serial = run_grid(Settings(), frames(), points, jobs=1)
    parallel = run_grid(Settings(), frames(), points, jobs=2)
    assert [r.params for r in parallel] == points
    for a, b in zip(serial, parallel, strict=True):
        assert a.report == b.report and a.equity == b.equity and a.fills == b.fills
    assert len({r.report.trade_count for r in serial if r.report}) > 1  # the grid matters


def test_ranked_table_csv_json_and_heatmap(tmp_path: Path) -> None:
    results = run_grid(Settings(), frames(), grid(Settings(), SPECS), jobs=1)
    ranked = rank(results, "total_return")
    values = [r.report.total_return for r in ranked if r.report]
    assert values == sorted(values, reverse=True)
    csv_path, json_path = write_table(tmp_path, ranked, "total_return")
    rows = list(csv.DictReader(csv_path.open()))
    doc = json.loads(json_path.read_text())
    assert doc["metric"] == "total_return" and len(doc["rows"]) == len(rows) == 4
    assert [float(r["total_return"]) for r in rows] == pytest.approx(values)
    assert rows[0]["signal.rsi_window"] == str(ranked[0].params["signal.rsi_window"])
    dd = rank(results, "max_drawdown_pct")  # smaller is better
    assert dd[0].metric("max_drawdown_pct") == min(r.metric("max_drawdown_pct") for r in results)

    heat = write_heatmap(tmp_path, results, "total_return")
    assert heat is not None
    with Image.open(heat) as img:
        assert img.format == "PNG" and img.size[0] > 200
    one_axis = run_grid(Settings(), frames()[:2000], grid(Settings(), SPECS[:1]), jobs=1)
    assert write_heatmap(tmp_path / "one", one_axis, "total_return") is None


def test_unknown_metric_and_bad_windows_are_named() -> None:
    with pytest.raises(SweepError, match="--metric 'calmar'"):
        rank([], "calmar")
    with pytest.raises(SweepError, match="expected TRAIN/TEST"):
        parse_walk_forward("30d")
    with pytest.raises(SweepError, match="duration '7x'"):
        parse_walk_forward("30d/7x")
    assert parse_walk_forward("2h/30m") == (7_200 * 10**9, 1_800 * 10**9)


def test_a_window_of_a_whole_run_equals_a_run_cut_at_the_window_end() -> None:
    """Why walk-forward may slice whole runs: decisions do not depend on later input."""
    params = {"signal.rsi_window": 4, "signal.rsi_oversold": 35.0}
    whole = run_point(0, params, Settings(), frames())
    assert whole.report is not None and whole.fills
    start = whole.equity[0][0] + 30 * 10**9
    end = start + 40 * 10**9
    cut = run_point(0, params, Settings(), [f for f in frames() if f.ts_event < end])
    assert window_report(whole, start, end, 10**9) == window_report(cut, start, end, 10**9)


def test_walk_forward_picks_the_best_train_point_and_measures_the_next_window() -> None:
    points = grid(Settings(), SPECS)
    results = run_grid(Settings(), frames(), points, jobs=1)
    train, test = 40 * 10**9, 20 * 10**9
    folds = walk_forward(results, train, test, "total_return", 10**9)
    assert len(folds) >= 2
    for fold in folds:
        assert fold.train_end - fold.train_start == train and fold.test_end - fold.train_end == test
        scores = {
            tuple(r.params.values()): window_report(r, fold.train_start, fold.train_end, 10**9)
            for r in results
        }
        best = max(s.total_return for s in scores.values() if s is not None)
        assert fold.train_metric == pytest.approx(best)
        chosen = next(r for r in results if r.params == fold.params)
        assert fold.test == window_report(chosen, fold.train_end, fold.test_end, 10**9)
    assert folds[1].train_start - folds[0].train_start == test
    with pytest.raises(SweepError, match="shorter than one train"):
        walk_forward(results, 10**12, 10**12, "total_return", 10**9)


def test_the_cli_runs_a_grid_and_names_an_unknown_parameter(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    import algostream.commands  # noqa: F401  (registers backtest)
    from algostream.cli import app

    runner = CliRunner()
    unknown = ["--sweep", "signal.rsi_period=6,10"]
    bad = runner.invoke(app, ["backtest", "--synthetic", "100", *unknown])
    assert bad.exit_code == 2 and "signal.rsi_period" in bad.output and "rsi_window" in bad.output
    out = tmp_path / "sweep"
    args = ["backtest", "--synthetic", "3000", "--jobs", "1", "--out", str(out),
            "--sweep", "signal.rsi_window=4,6", "--sweep", "signal.rsi_oversold=25,35",
            "--metric", "max_drawdown_pct", "--walk-forward", "20s/10s"]  # fmt: skip
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == [
        "heatmap.png", "sweep.csv", "sweep.json", "walk_forward.json"
    ]  # fmt: skip
    doc = json.loads((out / "walk_forward.json").read_text())
    assert doc["metric"] == "max_drawdown_pct" and len(doc["folds"]) >= 2


def _fake_runner(settings: Settings, inputs: object) -> ReportInputs:
    """A backtest whose equity grows by rsi_window per second: a plug-in runner."""
    step = settings.signal.rsi_window
    equity = [(i * 10**9, Decimal(100 + step * i)) for i in range(10)]
    return ReportInputs(equity=equity, period_ns=10**9, min_ratio_span_ns=0)


def test_another_engine_plugs_in_as_a_runner() -> None:
    points = grid(Settings(), ["signal.rsi_window=3,9,5"])
    results = run_grid(Settings(), (), points, jobs=2, runner=_fake_runner)
    ranked = rank(results, "total_return")
    assert [r.params["signal.rsi_window"] for r in ranked] == [9, 5, 3]
    assert ranked[0].report is not None and ranked[0].report.end_equity == Decimal(181)
