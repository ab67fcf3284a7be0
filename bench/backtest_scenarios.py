"""Digests of a tick backtest's outputs in seven scenarios (``python -m bench.backtest_scenarios``).

For checking that a change to the tick path changes no output: run it on two trees
(``PYTHONPATH=<tree>``) and compare the lines. Each scenario runs the seeded synthetic
market three times, from its md.book + md.trades records, from its raw frames and from
the records with md.book as its encoded bytes (``EncodedBook``: the compiled book path, as a
replay from the topics gives them), closes the positions at the end, and hashes every
output record (topic and encoded bytes) and the risk state: the golden config
(``config/system.json``), default settings, tight stops that fire, a loss breaker that
trips, LIFO, AVERAGE, and two strategies with budgets.
"""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

from algostream.backtest.engine import BacktestEngine, EncodedBook
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings, StrategySpec, load_settings
from algostream.model.enums import CostMethod
from algostream.model.records import BookUpdate

CONFIG = Path(__file__).resolve().parents[1] / "config" / "system.json"
SHOWN = ("risk.events", "orders.events", "positions", "pnl", "orders.rejected")


def _risk(s: Settings, **changes: object) -> Settings:
    return s.model_copy(update={"risk": s.risk.model_copy(update=changes)})


def scenarios() -> dict[str, Settings]:
    golden = load_settings(CONFIG, env={})
    base = Settings()
    budgets = (
        StrategySpec(id="fast", strategy="sma_crossover", max_daily_loss=Decimal("0.5")),
        StrategySpec(
            id="slow", strategy="rsi_mean_reversion", max_drawdown_percent=Decimal("0.001")
        ),
    )
    two = base.model_copy(update={"signal": base.signal.model_copy(update={"strategies": budgets})})
    return {
        "golden": golden,
        "default": base,
        "tight_stops": _risk(
            golden, stop_loss_percent=Decimal("0.02"), trailing_stop_percent=Decimal("0.01")
        ),
        "breaker_trips": _risk(
            golden, max_loss_threshold=Decimal("3"), max_drawdown_percent=Decimal("0.002")
        ),
        "lifo": _risk(golden, cost_method=CostMethod.LIFO),
        "average": _risk(golden, cost_method=CostMethod.AVERAGE),
        "two_strategies": two,
    }


def main() -> None:
    frames = synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 20_000)
    raw = BacktestEngine(Settings()).run(frames)
    records = [r for t, r in raw.outputs if t in ("md.book", "md.trades")]
    encoded = [
        EncodedBook(r.ts_event, r.encode()) if isinstance(r, BookUpdate) else r for r in records
    ]
    for name, settings in scenarios().items():
        digest = hashlib.sha256()
        counts: dict[str, int] = {}
        for source in (records, frames, encoded):
            engine = BacktestEngine(settings)
            engine.run(source)
            engine.finish(close_positions=True)
            for topic, record in engine.result.outputs:
                digest.update(topic.encode())
                digest.update(record.encode())
            state = json.dumps(engine.risk.to_state(), sort_keys=True, default=str)
            digest.update(state.encode())
            counts = engine.result.counts
        shown = {k: v for k, v in counts.items() if k in SHOWN}
        print(name, digest.hexdigest()[:16], shown)


if __name__ == "__main__":
    main()
