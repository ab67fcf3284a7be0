"""No look-ahead: changing the market after time t never changes a decision made at or
before t (signals, proposals, risk decisions, fills), whatever the change (hypothesis)."""

from __future__ import annotations

from decimal import Decimal
from functools import cache

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from algostream.backtest.engine import BacktestEngine
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings
from algostream.model.records import BookUpdate, Record, TradeTick

DECISIONS = ("signals", "orders.proposed", "orders.approved", "orders.rejected", "orders.events")


@cache
def market() -> tuple[Record, ...]:
    """Normalised md.book/md.trades records of a synthetic market (the topics' content)."""
    run = BacktestEngine(Settings()).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 5_000))
    merged = [r for t, r in run.outputs if t in ("md.book", "md.trades")]
    return tuple(merged)


@cache
def decisions_of_base() -> tuple[tuple[str, Record], ...]:
    return tuple(_decisions(market()))


def _decisions(records: tuple[Record, ...] | list[Record]) -> list[tuple[str, Record]]:
    result = BacktestEngine(Settings()).run(records)
    return [(t, r) for t, r in result.outputs if t in DECISIONS]


def _changed_trade(trade: TradeTick, factor: Decimal, size: Decimal) -> TradeTick:
    price = max((trade.price * factor).quantize(Decimal("0.01")), Decimal("0.01"))
    return trade.model_copy(update={"price": price, "size": size})


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cut=st.floats(min_value=0.0, max_value=1.0),
    mode=st.sampled_from(["reprice", "truncate", "drop_books"]),
    factor=st.decimals(min_value=Decimal("0.5"), max_value=Decimal("1.5"), places=3),
    size=st.decimals(min_value=Decimal("0.001"), max_value=Decimal("50"), places=3),
)
def test_changing_the_market_after_t_changes_no_decision_up_to_t(
    cut: float, mode: str, factor: Decimal, size: Decimal
) -> None:
    base = market()
    first = decisions_of_base()[0][1].ts_init  # t from the first decision to the end
    later = [r.ts_init for r in base if r.ts_init >= first]
    t = later[int((len(later) - 1) * cut)]
    changed: list[Record] = []
    for record in base:
        if record.ts_init <= t:
            changed.append(record)
        elif mode == "reprice" and isinstance(record, TradeTick):
            changed.append(_changed_trade(record, factor, size))
        elif mode == "drop_books" and isinstance(record, BookUpdate):
            continue
        elif mode != "truncate":
            changed.append(record)
    before = [(topic, r) for topic, r in decisions_of_base() if r.ts_init <= t]
    after = [(topic, r) for topic, r in _decisions(changed) if r.ts_init <= t]
    assert before, "the cut must leave decisions to compare"
    assert after == before


def test_the_base_market_makes_decisions_of_every_kind() -> None:
    topics = {topic for topic, _ in decisions_of_base()}
    assert {"signals", "orders.proposed", "orders.approved", "orders.events"} <= topics
