"""Parameter sweeps and walk-forward over the backtest engine.

``--sweep 'signal.rsi_window=6,10,14' --sweep 'signal.rsi_oversold=25,30'`` names config
keys (``section.key``, as in ``config/system.json``) and their values; the grid is their
product. Each point is one :class:`~algostream.backtest.engine.BacktestEngine` run over the
same inputs with those settings, in worker processes (forked: the inputs are handed over
once, not pickled per run); the engine is deterministic, so a point's result does not
depend on the process or the order it ran in. Results are ranked by one report metric.

**Walk-forward** ``TRAIN/TEST`` (e.g. ``2h/1h``): windows ``[t, t + TRAIN)`` to pick the
best point by the metric, then ``[t + TRAIN, t + TRAIN + TEST)`` to measure it out of
sample; ``t`` steps by ``TEST``. Every point runs once over the whole input and each window
is measured on its slice of that run (equity as of the window start to its end, the fills
inside it): a decision never depends on later input (the look-ahead property test), so a
run cut at the window's end would have made the same decisions, and the indicators and
book are warm at every window start. The out-of-sample result is the chained test windows.

>>> from algostream.config import Settings
>>> points = grid(Settings(), ["signal.rsi_window=6,10", "signal.rsi_oversold=25,30"])
>>> len(points), points[0]
(4, {'signal.rsi_window': 6, 'signal.rsi_oversold': 25.0})
"""

from __future__ import annotations

import csv
import difflib
import io
import itertools
import math
import multiprocessing
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from algostream.backtest.engine import BacktestEngine, EngineInput
from algostream.backtest.errors import SweepError
from algostream.backtest.report import BacktestReport, ReportInputs, compute_report
from algostream.config import Settings
from algostream.model.records import OrderEvent

Params = dict[str, Any]

#: metrics a sweep can rank by, and whether larger is better
METRICS: dict[str, bool] = {
    "total_return": True,
    "sharpe": True,
    "sortino": True,
    "annualized_return": True,
    "pnl": True,
    "win_rate": True,
    "profit_factor": True,
    "max_drawdown_pct": False,
    "trade_count": True,
}


# --------------------------------------------------------------------------- the grid


def _setting_names() -> list[str]:
    names = []
    for section, info in Settings.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names += [f"{section}.{key}" for key in model.model_fields]
    return names


def parse_spec(spec: str) -> tuple[str, list[str]]:
    """``'signal.rsi_window=6,10'`` -> ``('signal.rsi_window', ['6', '10'])``."""
    name, sep, values = spec.partition("=")
    items = [v.strip() for v in values.split(",") if v.strip()]
    if not sep or not items:
        raise SweepError(f"--sweep {spec!r}: expected section.key=value1,value2,...")
    name = name.strip()
    known = _setting_names()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise SweepError(
            f"--sweep {name!r} is not a setting (section.key of config/system.json){hint}"
        )
    return name, items


def apply_params(settings: Settings, params: Params) -> Settings:
    """``settings`` with ``params`` set, validated; :class:`SweepError` names a bad value."""
    data = settings.model_dump()
    for name, value in params.items():
        section, key = name.split(".", 1)
        data[section][key] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        raise SweepError(f"--sweep {key}={err.get('input')!r}: {err['msg']}") from None


def grid(settings: Settings, specs: Sequence[str]) -> list[Params]:
    """Every combination of the specs' values, each value typed by its setting."""
    axes = [parse_spec(s) for s in specs]
    names = [n for n, _ in axes]
    if len(set(names)) != len(names):
        raise SweepError(f"--sweep names a setting twice: {names}")
    typed: list[list[Any]] = []
    for name, values in axes:
        section, key = name.split(".", 1)
        typed.append(
            [getattr(getattr(apply_params(settings, {name: v}), section), key) for v in values]
        )
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*typed)]


# --------------------------------------------------------------------------- running


@dataclass
class PointResult:
    """One grid point: its parameters, the report of the whole run, its curve and fills."""

    index: int
    params: Params
    report: BacktestReport | None
    equity: list[tuple[int, Decimal]] = field(default_factory=list)
    fills: list[OrderEvent] = field(default_factory=list)

    def metric(self, name: str) -> float | None:
        value = getattr(self.report, name, None) if self.report is not None else None
        return None if value is None else float(value)


#: One backtest of ``inputs`` under ``settings``: the report's inputs, or ``None`` when it
#: made no equity curve. The tick engine's is :func:`engine_run`; a bar engine plugs in
#: the same way (``run_grid(..., runner=...)``, a module-level function).
Runner = Callable[[Settings, Sequence[EngineInput]], ReportInputs | None]


def engine_run(settings: Settings, inputs: Sequence[EngineInput]) -> ReportInputs | None:
    """:class:`BacktestEngine` over ``inputs`` (raw frames or md.book/md.trades records)."""
    from algostream.backtest.run import report_inputs

    engine = BacktestEngine(settings)
    engine.run(inputs)
    result = engine.finish()  # the last bars close, as in a plain `algostream backtest`
    return report_inputs(settings, result) if result.equity_curve else None


_INPUTS: Sequence[EngineInput] = ()
_BASE: Settings | None = None
_RUNNER: Runner = engine_run


def run_point(
    index: int,
    params: Params,
    settings: Settings,
    inputs: Sequence[EngineInput],
    runner: Runner = engine_run,
) -> PointResult:
    """One run with ``params``; deterministic for the same inputs."""
    made = runner(apply_params(settings, params), inputs)
    if made is None:
        return PointResult(index, params, None)
    return PointResult(
        index, params, compute_report(made), list(made.equity), list(made.fill_events)
    )


def _run_in_worker(index: int, params: Params) -> PointResult:
    assert _BASE is not None, "the sweep's inputs were not handed to this process"
    return run_point(index, params, _BASE, _INPUTS, _RUNNER)


def run_grid(
    settings: Settings,
    inputs: Sequence[EngineInput],
    points: Sequence[Params],
    jobs: int,
    done: Callable[[PointResult], None] = lambda _r: None,
    runner: Runner = engine_run,
) -> list[PointResult]:
    """Run every point (``jobs`` processes; 1: in this process), results in grid order."""
    global _INPUTS, _BASE, _RUNNER
    if jobs <= 1:
        out = []
        for i, p in enumerate(points):
            out.append(run_point(i, p, settings, inputs, runner))
            done(out[-1])
        return out
    _INPUTS, _BASE, _RUNNER = inputs, settings, runner  # inherited by the forked workers
    results: list[PointResult] = []
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            futures = [pool.submit(_run_in_worker, i, p) for i, p in enumerate(points)]
            for future in as_completed(futures):
                results.append(future.result())
                done(results[-1])
    finally:
        _INPUTS, _BASE, _RUNNER = (), None, engine_run
    return sorted(results, key=lambda r: r.index)


def rank(results: Sequence[PointResult], metric: str) -> list[PointResult]:
    """Best first by ``metric`` (see :data:`METRICS`); points without it last, in grid order."""
    if metric not in METRICS:
        raise SweepError(f"--metric {metric!r} is not one of {', '.join(METRICS)}")
    sign = -1.0 if METRICS[metric] else 1.0

    def key(r: PointResult) -> tuple[int, float, int]:
        value = r.metric(metric)
        if value is None or math.isnan(value):
            return (1, 0.0, r.index)
        return (0, sign * value, r.index)

    return sorted(results, key=key)


# --------------------------------------------------------------------------- outputs

TABLE_METRICS = (
    "total_return",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "pnl",
    "trade_count",
    "win_rate",
    "profit_factor",
    "total_fees",
)


def table_rows(ranked: Sequence[PointResult]) -> list[dict[str, Any]]:
    """One row per point, best first: rank, the parameters, the metrics (JSON-able)."""
    rows = []
    for n, r in enumerate(ranked, 1):
        row: dict[str, Any] = {"rank": n, **r.params}
        for m in TABLE_METRICS:
            value = getattr(r.report, m, None) if r.report is not None else None
            row[m] = str(value) if isinstance(value, Decimal) else value
        rows.append(row)
    return rows


def write_table(out: Path, ranked: Sequence[PointResult], metric: str) -> tuple[Path, Path]:
    """``sweep.csv`` and ``sweep.json`` (``{"metric": ..., "rows": [...]}``) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(ranked)
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (out / "sweep.csv").write_text(buf.getvalue(), encoding="utf-8")
    doc = {"metric": metric, "rows": rows}
    (out / "sweep.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return out / "sweep.csv", out / "sweep.json"


def write_heatmap(out: Path, results: Sequence[PointResult], metric: str) -> Path | None:
    """``heatmap.png`` of ``metric`` over a two-parameter grid (``None`` otherwise)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    names = list(results[0].params) if results else []
    if len(names) != 2:
        return None
    xs = list(dict.fromkeys(r.params[names[0]] for r in results))
    ys = list(dict.fromkeys(r.params[names[1]] for r in results))
    cells = np.full((len(ys), len(xs)), np.nan)
    for r in results:
        value = r.metric(metric)
        if value is not None:
            cells[ys.index(r.params[names[1]]), xs.index(r.params[names[0]])] = value
    fig = Figure(figsize=(2 + 1.1 * len(xs), 1.5 + 0.7 * len(ys)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(cells), cmap="RdYlGn" if METRICS[metric] else "RdYlGn_r")
    ax.set_xticks(range(len(xs)), [str(x) for x in xs])
    ax.set_yticks(range(len(ys)), [str(y) for y in ys])
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    as_pct = metric in PERCENT_METRICS
    for (yi, xi), value in np.ndenumerate(cells):
        text = "n/a" if math.isnan(value) else _cell_text(value, as_pct)
        ax.text(xi, yi, text, ha="center", va="center", fontsize=9)
    bar = fig.colorbar(image, ax=ax, label=metric)
    bar.ax.yaxis.set_major_formatter(
        FuncFormatter(lambda v, _p: _cell_text(v, as_pct))  # plain labels, no 1e-5 offset
    )
    ax.set_title(f"{metric} by {names[0]} and {names[1]}")
    path = out / "heatmap.png"
    fig.savefig(path, dpi=100, metadata={"Software": None})
    return path


PERCENT_METRICS = frozenset({"total_return", "annualized_return", "max_drawdown_pct", "win_rate"})


def _cell_text(value: float, as_pct: bool) -> str:
    return f"{value * 100:.3g} %" if as_pct else f"{value:,.4g}"


# --------------------------------------------------------------------------- walk-forward

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3_600, "d": 86_400, "w": 604_800}


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``4h``, ``30d``, ``2w`` -> ns."""
    match = re.fullmatch(r"\s*(\d+)\s*(s|min|m|h|d|w)\s*", text)
    if not match or int(match.group(1)) == 0:
        raise SweepError(f"duration {text!r}: expected a positive number and s, m, h, d or w")
    return int(match.group(1)) * _UNITS[match.group(2)] * 1_000_000_000


def parse_walk_forward(text: str) -> tuple[int, int]:
    """``'4h/1h'`` -> (train ns, test ns)."""
    train, sep, test = text.partition("/")
    if not sep:
        raise SweepError(f"--walk-forward {text!r}: expected TRAIN/TEST, e.g. 30d/7d")
    return parse_duration(train), parse_duration(test)


@dataclass(frozen=True)
class Fold:
    """One walk-forward step: the point picked on train, and its out-of-sample report."""

    train_start: int
    train_end: int
    test_end: int
    params: Params
    train_metric: float | None
    test: BacktestReport | None


def window_report(r: PointResult, start: int, end: int, period_ns: int) -> BacktestReport | None:
    """The report of ``r``'s run measured on ``[start, end)``: equity as of ``start``."""
    if r.report is None or not r.equity or r.equity[0][0] > start:
        return None
    before = [p for p in r.equity if p[0] <= start]
    inside = [p for p in r.equity if start < p[0] < end]
    points = [(start, before[-1][1]), *inside]
    last = inside[-1][1] if inside else before[-1][1]
    points.append((end, last))
    fills = [f for f in r.fills if start <= f.ts_event < end]
    inputs = ReportInputs(equity=points, fills=fills, period_ns=period_ns, min_ratio_span_ns=0)
    return compute_report(inputs)


def walk_forward(
    results: Sequence[PointResult], train_ns: int, test_ns: int, metric: str, period_ns: int
) -> list[Fold]:
    """Pick the best point on each train window, measure it on the next test window."""
    runs = [r for r in results if r.report is not None and r.equity]
    if not runs:
        raise SweepError("walk-forward: no grid point traded, nothing to pick from")
    start = min(r.equity[0][0] for r in runs)
    end = max(r.equity[-1][0] for r in runs)
    if start + train_ns + test_ns > end:
        raise SweepError(
            f"walk-forward: the history spans {(end - start) / 1e9:g}s, shorter than one "
            f"train + test window ({(train_ns + test_ns) / 1e9:g}s)"
        )
    folds = []
    t = start
    while t + train_ns + test_ns <= end:
        scored = [
            PointResult(r.index, r.params, window_report(r, t, t + train_ns, period_ns))
            for r in runs
        ]
        best = rank(scored, metric)[0]
        chosen = next(r for r in runs if r.index == best.index)
        test = window_report(chosen, t + train_ns, t + train_ns + test_ns, period_ns)
        folds.append(Fold(t, t + train_ns, t + train_ns + test_ns, best.params,
                          best.metric(metric), test))  # fmt: skip
        t += test_ns
    return folds


def out_of_sample_return(folds: Sequence[Fold]) -> float:
    """The test windows chained: ``prod(1 + r) - 1``."""
    growth = 1.0
    for fold in folds:
        if fold.test is not None:
            growth *= 1.0 + fold.test.total_return
    return growth - 1.0


def write_walk_forward(out: Path, folds: Sequence[Fold], metric: str) -> Path:
    """``walk_forward.json``: each fold's windows, pick and out-of-sample figures."""
    from datetime import UTC, datetime

    def iso(ns: int) -> str:
        return datetime.fromtimestamp(ns / 1e9, UTC).isoformat()

    doc = {
        "metric": metric,
        "out_of_sample_return": out_of_sample_return(folds),
        "folds": [
            {
                "train": [iso(f.train_start), iso(f.train_end)],
                "test": [iso(f.train_end), iso(f.test_end)],
                "params": f.params,
                f"train_{metric}": f.train_metric,
                "test_total_return": f.test.total_return if f.test else None,
                "test_max_drawdown_pct": f.test.max_drawdown_pct if f.test else None,
                "test_trades": f.test.trade_count if f.test else None,
                "test_pnl": str(f.test.pnl) if f.test else None,
            }
            for f in folds
        ],
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "walk_forward.json"
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")
    return path
