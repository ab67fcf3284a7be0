"""The account ledger's kept totals equal the full sums over its positions (property tests).

The ledger keeps its totals instead of summing them on every look (a mark of the same
value changes nothing; a moving mark sums over the positions' kept terms); these tests
drive random fills, marks and funding (prices
and quantities of every exponent, FIFO/LIFO/AVERAGE, several instruments) and check after
every step that each total equals ``sum(<terms>, Decimal(0))``, value *and* exponent (a
record's digits), and that the peak is what a ledger summing on every step would hold.
The loss breaker and the stops, which decide on kept values, are checked against the
full computation the same way.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from algostream.config import RiskConfig
from algostream.model import CostMethod, Side
from algostream.model.records import BookTop
from algostream.risk import AccountLedger
from algostream.risk.breaker import CircuitBreaker
from algostream.risk.stops import StopManager

ZERO = Decimal(0)
INSTRUMENTS = ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SOLUSDT")


def _dec(mantissa: int, exponent: int) -> Decimal:
    """``mantissa`` x 10^``exponent`` keeping that exponent (trailing zeros included)."""
    return Decimal((0, tuple(int(d) for d in str(mantissa)), exponent))


prices = st.builds(_dec, st.integers(9_000, 11_000), st.integers(-4, 0)).map(
    lambda d: d if d > 0 else Decimal(1)
)
quantities = st.builds(_dec, st.integers(1, 5_000), st.integers(-6, -1))
fees = st.builds(_dec, st.integers(0, 900), st.integers(-8, -2))
instruments = st.sampled_from(INSTRUMENTS)
steps = st.lists(
    st.one_of(
        st.tuples(st.just("fill"), instruments, st.sampled_from(Side), quantities, prices, fees),
        st.tuples(st.just("mark"), instruments, prices),
        st.tuples(st.just("pos_mark"), instruments, prices),  # PositionLedger.set_mark alone
        st.tuples(st.just("funding"), instruments, fees, st.booleans()),
    ),
    min_size=1,
    max_size=60,
)


def _same(kept: Decimal, summed: Decimal) -> bool:
    return kept == summed and kept.as_tuple() == summed.as_tuple()


def _naive_unrealized(ledger: AccountLedger, instrument: str) -> Decimal:
    pos = ledger.positions[instrument]
    if pos.mark_price is None or not pos.lots:
        return ZERO
    sign = 1 if pos.quantity > 0 else -1
    return sign * sum((lot.quantity * (pos.mark_price - lot.price) for lot in pos.lots), ZERO)


def _apply(ledger: AccountLedger, step: tuple[Any, ...], peak: Decimal) -> Decimal:
    """Apply ``step``; returns the peak a ledger summing on every step would hold."""
    kind, inst = step[0], step[1]
    if kind == "fill":
        _, _, side, qty, price, fee = step
        ledger.apply_fill(inst, side, qty, price, fee)
    elif kind == "mark":
        ledger.set_mark(inst, step[2])
    elif kind == "pos_mark":
        ledger.position(inst).set_mark(step[2])  # the bar backtest's way: no peak update
        return peak
    else:
        amount = step[2] if step[3] else -step[2]
        ledger.position(inst).apply_funding(amount)
        return peak
    equity = ledger.summed()[3]
    return equity if equity > peak else peak


def _check(ledger: AccountLedger, peak: Decimal) -> None:
    realized, unrealized, fees_, equity = ledger.summed()
    assert _same(ledger.realized_pnl, realized)
    assert _same(ledger.fees, fees_)
    assert ledger.unrealized_value == unrealized  # the kept value, before any sum
    assert ledger.equity_value == equity
    assert _same(ledger.unrealized_pnl, unrealized)
    assert _same(ledger.equity, equity)
    assert _same(ledger.peak_equity, peak)
    for inst, pos in ledger.positions.items():
        assert _same(pos.unrealized_pnl(), _naive_unrealized(ledger, inst))
    assert ledger.funding == sum((p.funding for p in ledger.positions.values()), ZERO)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(CostMethod), steps)
def test_kept_totals_equal_the_full_sums_after_any_fills_and_marks(
    method: CostMethod, script: list[tuple[Any, ...]]
) -> None:
    ledger = AccountLedger("paper", method, Decimal("100000.0"))
    peak = ledger.peak_equity
    for step in script:
        peak = _apply(ledger, step, peak)
        _check(ledger, peak)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(CostMethod), steps, steps)
@example(  # a funding of 0.000: falsy, once dropped from the state (then 0.01 != 0.010)
    CostMethod.FIFO,
    [("funding", INSTRUMENTS[0], Decimal("0.000"), False)],
    [("funding", INSTRUMENTS[0], Decimal("0.01"), False)],
)
def test_a_restored_ledger_keeps_the_same_totals(
    method: CostMethod, before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    ledger = AccountLedger("paper", method, Decimal("100000.0"))
    peak = ledger.peak_equity
    for step in before:
        peak = _apply(ledger, step, peak)
    restored = AccountLedger.from_state(ledger.to_state())
    _check(restored, peak)
    for step in after:
        peak = _apply(ledger, step, peak)
        _apply(restored, step, peak)
        _check(restored, peak)
        assert restored.to_state() == ledger.to_state()


def test_past_the_context_precision_the_totals_are_the_full_sums() -> None:
    """A value past 28 digits cannot be kept exactly: the ledger sums (and rounds) as the
    full sum does, instead of keeping a value the sums would not give."""
    ledger = AccountLedger("paper", CostMethod.FIFO, Decimal("100000.0"))
    ledger.apply_fill(INSTRUMENTS[0], Side.BUY, Decimal("123456789.123456789"), Decimal("1"), ZERO)
    ledger.apply_fill(INSTRUMENTS[1], Side.SELL, Decimal("0.000000001"), Decimal("3"), ZERO)
    for mark in ("1.000000000000000001", "2.5", "1.123456789123456789"):
        ledger.set_mark(INSTRUMENTS[0], Decimal(mark))
        ledger.set_mark(INSTRUMENTS[1], Decimal(mark))
        _, unrealized, _, equity = ledger.summed()
        assert _same(ledger.unrealized_pnl, unrealized)
        assert _same(ledger.equity, equity)
        assert ledger.equity_value == equity


@settings(max_examples=200, deadline=None)
@given(
    steps,
    st.builds(_dec, st.integers(1, 500), st.integers(-2, 0)),
    st.builds(_dec, st.integers(1, 900), st.integers(-4, -1)),
)
def test_the_breaker_decides_on_kept_values_as_on_the_sums(
    script: list[tuple[Any, ...]], max_loss: Decimal, max_dd: Decimal
) -> None:
    config = RiskConfig(max_loss_threshold=max_loss, max_drawdown_percent=max_dd)
    breaker = CircuitBreaker(config)
    ledger = AccountLedger("paper", CostMethod.FIFO, Decimal("1000"))
    peak = ledger.peak_equity
    for step in script:
        peak = _apply(ledger, step, peak)
        assert breaker._breach(ledger) == breaker._breach_detail(ledger)


def _top(price: Decimal) -> BookTop:
    tick = Decimal("0.01")
    bid, ask = price - tick, price + tick
    return BookTop(
        instrument=INSTRUMENTS[0],
        ts_event=1,
        ts_init=1,
        record_id="t",
        lineage_id="t",
        bids=((bid, Decimal(1)),),
        asks=((ask, Decimal(1)),),
        best_bid=bid,
        best_ask=ask,
        mid=price,
        update_id=1,
    )


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from((1, -1)),
    prices,
    st.lists(prices, min_size=1, max_size=40),
    st.sampled_from(("0", "0.5", "2.0", "0.05")),
    st.sampled_from(("0", "0.3", "1.5", "0.01")),
)
@example(1, Decimal("100"), [Decimal("98.01")], "2.0", "0")  # bid exactly at the stop
@example(-1, Decimal("100"), [Decimal("101.99")], "2.0", "0")  # ask exactly at the stop
@example(1, Decimal("100"), [Decimal("110.01"), Decimal("108.36")], "0", "1.5")  # trailing
def test_stops_fire_where_the_full_check_fires(
    direction: int, entry: Decimal, path: list[Decimal], sl: str, ts: str
) -> None:
    """The kept trip price gives the same hits, on the same tops, as checking both stops
    with the full formula on every top (``StopManager._triggered``)."""
    stops = StopManager(Decimal(sl), Decimal(ts), max_attempts=1)
    position = Decimal(direction)
    stops.on_position("paper", INSTRUMENTS[0], ZERO, position, entry, "fill-1")
    best, fired = entry, False
    for price in path:
        top = _top(price)
        hit = stops.evaluate("paper", INSTRUMENTS[0], position, entry, top)
        exit_ = top.best_bid if direction > 0 else top.best_ask
        assert exit_ is not None
        want = None
        if not fired:
            if (exit_ - best) * direction > 0:
                best = exit_
            want = stops._triggered(direction, exit_, entry, best)
        assert (hit is None) == (want is None)
        if hit is not None and want is not None:
            assert (hit.kind, hit.stop_price, hit.best_price) == (want[0], want[1], best)
            fired = True


@settings(max_examples=200, deadline=None)
@given(
    steps,
    st.builds(_dec, st.integers(1, 500), st.integers(-2, 0)),
    st.builds(_dec, st.integers(1, 900), st.integers(-4, -1)),
)
def test_the_breaker_skips_a_check_only_when_nothing_it_reads_moved(
    script: list[tuple[Any, ...]], max_loss: Decimal, max_dd: Decimal
) -> None:
    """``check_account`` remembers an account found clear (its ledger's version and peak):
    on every step, including repeated marks at one price, it trips exactly when a breaker
    that checks afresh every time trips."""
    config = RiskConfig(max_loss_threshold=max_loss, max_drawdown_percent=max_dd)
    kept, fresh = CircuitBreaker(config), CircuitBreaker(config)
    ledger = AccountLedger("paper", CostMethod.FIFO, Decimal("1000"))
    peak = ledger.peak_equity
    for step in [s for one in script for s in (one, one)]:  # each step twice
        peak = _apply(ledger, step, peak)
        fresh._clear.clear()
        assert kept.check_account(ledger) == fresh.check_account(ledger)
        assert kept.account_state("paper") is fresh.account_state("paper")
