"""A book top's quiet path gives what the full mark path gives (property tests).

``RiskProcessor.on_book_top`` skips the full path (stops, breaker, throttled records) for
a top that can change nothing but the mark. These tests drive random tops (the same mid
again, one-sided books, moves that reach the stops), fills, integrity events and time
through two processors, one of them marking every top by the full path as it always
did, and require the same output records, byte for byte, and the same state after each
step. Position/PnL records built without validation equal the validated ones.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from algostream.config import RiskConfig
from algostream.model import ControlAction, CostMethod, IntegrityKind, OrderStatus, Side
from algostream.model.records import BookTop, OrderRequest, PnL, Position, Record
from algostream.risk import RiskProcessor
from algostream.risk.ledger import AccountLedger
from tests.unit.risk.risk_testkit import (
    ACCOUNT,
    BTC,
    ETH,
    SECOND,
    control,
    fill,
    integrity,
    status_event,
    top,
)


class FullMarks(RiskProcessor):
    """Every top through the full path (stops, breaker, throttle), as before the quiet
    path: the reference."""

    def on_book_top(self, top: BookTop, now_ns: int | None = None) -> list[Record]:
        now = top.ts_init if now_ns is None else now_ns
        self._tops[top.instrument] = top
        out: list[Record] = []
        for ledger in self.ledgers.values():
            pos = ledger.positions.get(top.instrument)
            if pos is None:
                continue
            if top.mid is not None:
                ledger.set_mark(top.instrument, top.mid)
            if pos.quantity:
                out.extend(self._full_outputs(ledger, top, now))
        return out

    def _full_outputs(self, ledger: AccountLedger, top: BookTop, now: int) -> list[Record]:
        from algostream.model.enums import TradingState
        from algostream.risk.stops import stop_event, stop_proposal

        inst, account = top.instrument, ledger.account
        pos = ledger.positions[inst]
        out: list[Record] = []
        state = self.breaker.state(account, inst)
        hit = None
        if state is not TradingState.HALTED:
            hit = self.stops.evaluate(account, inst, pos.quantity, pos.avg_price, top)
        if hit is not None:
            out += [stop_proposal(hit, top, now), stop_event(hit, state, top, now)]
        out += [c.to_event(top, now) for c in self.breaker.check_account(ledger)]
        last = self._last_emit.get((account, inst))
        if out or last is None or top.ts_event - last >= self.mark_interval_ns:
            self._last_emit[(account, inst)] = top.ts_event
            out.append(pos.to_record(ts_event=top.ts_event, ts_init=now, cause_id=top.record_id))
            out.append(
                ledger.pnl_record(ts_event=top.ts_event, ts_init=now, cause_id=top.record_id)
            )
        return out


#: a move of the mid, in cents: half of them 0 (the same mid again, most tops)
ticks = st.one_of(st.just(0), st.integers(-30, 30))
#: how a top's prices are made: the previous top's Decimal objects again where the price
#: is the same (as the compiled book path hands them while a best level is unchanged),
#: new objects of the same values, or the same values with another exponent
forms = st.sampled_from(("same", "same", "same", "fresh", "scaled"))
top_step = st.tuples(
    st.just("top"),
    st.sampled_from((BTC, ETH)),
    ticks,
    st.sampled_from(("both", "both", "both", "bid", "ask")),
    # ms since the last event: mostly within the record interval (1 s), some past it,
    # some out of order (< 0)
    st.one_of(st.integers(1, 300), st.integers(-200, 1500)),
    forms,
    st.integers(1, 8),  # tops: the first moves the mid, the others leave it (that gap each)
)
step = st.one_of(
    *[top_step] * 8,  # (most events are tops)
    st.tuples(
        st.just("fill"),
        st.sampled_from((BTC, ETH)),
        st.sampled_from(Side),
        st.sampled_from(("0.1", "0.5", "1", "2")),
    ),
    st.tuples(
        st.just("integrity"),
        st.sampled_from((BTC, ETH)),
        # (a layer set stops the quiet path on every top: mostly lifted again soon)
        st.sampled_from((IntegrityKind.GAP, *[IntegrityKind.RESYNCED] * 4)),
    ),
    # a funding straight into a position's ledger: equity (and maybe a new peak) moves
    # with no mark and no fill through the processor
    st.tuples(st.just("funding"), st.sampled_from((BTC, ETH)), st.sampled_from(("5", "-3"))),
    # the venue's answer to the oldest proposal (a stop's close): cancelled re-arms the
    # stop, filled closes the position
    st.tuples(st.just("venue"), st.sampled_from(("cancel", "fill"))),
    st.tuples(
        st.just("control"),
        st.sampled_from((ControlAction.HALT, ControlAction.REDUCE, *[ControlAction.RESUME] * 6)),
    ),
)


def _top(
    inst: str, mid: Decimal, sides: str, form: str, ts: int, rid: str, last: BookTop | None
) -> BookTop:
    if form == "scaled":
        mid = mid.quantize(Decimal("0.001"))
    bid = mid - Decimal("0.01") if sides in ("both", "bid") else None
    ask = mid + Decimal("0.01") if sides in ("both", "ask") else None
    made = top(inst, None if bid is None else str(bid), None if ask is None else str(ask), ts, rid)
    if form != "same" or last is None:
        return made
    # the previous top's objects for each price that is the same (value and exponent)
    same: dict[str, Any] = {}
    for name in ("best_bid", "best_ask", "mid"):
        new, old = getattr(made, name), getattr(last, name)
        if new is not None and old is not None and new == old and new.same_quantum(old):
            same[name] = old
    if "best_bid" in same:
        same["bids"] = last.bids
    if "best_ask" in same:
        same["asks"] = last.asks
    return made.model_copy(update=same)


def _run(p: RiskProcessor, script: list[tuple[Any, ...]]) -> list[list[bytes]]:
    mids = {BTC: Decimal("100.00"), ETH: Decimal("50.00")}
    last: dict[str, BookTop] = {}
    proposals: list[OrderRequest] = []
    ts, outs = 100 * SECOND, []  # (tops out of order stay after 0)
    for n, s in enumerate(script, 1):
        if s[0] == "top":
            _, inst, move, sides, gap_ms, form, repeat = s
            mids[inst] += Decimal(move) / 100
            out = []
            for k in range(repeat):
                ts += gap_ms * 1_000_000
                rid = f"top-{n}-{k}"
                made = last[inst] = _top(inst, mids[inst], sides, form, ts, rid, last.get(inst))
                out += p.on_book_top(made)
        elif s[0] == "fill":
            _, inst, side, qty = s
            price = str(mids[inst])
            out = p.on_order_event(fill(f"fill-{n}", side, qty, price, "0.01", inst, ts=ts))
        elif s[0] == "integrity":
            out = p.on_integrity(integrity(s[2], s[1], ts))
        elif s[0] == "funding":
            ledger = p.ledgers.get(ACCOUNT)
            pos = None if ledger is None else ledger.positions.get(s[1])
            if pos is not None:
                pos.apply_funding(Decimal(s[2]))
            out = []
        elif s[0] == "venue":
            out = []
            if proposals:
                order = proposals.pop(0)
                inst, coid = order.instrument, order.client_order_id
                qty, side = str(order.quantity), order.side
                out = p.on_order_event(
                    status_event(f"cancel-{n}", coid, OrderStatus.CANCELLED, side, qty, inst, ts)
                    if s[1] == "cancel"
                    else fill(f"fill-{n}", side, qty, str(mids[inst]), "0.01", inst, coid, ts)
                )
        else:
            out = p.on_control(control(s[1], ts=ts))
        proposals += [r for r in out if isinstance(r, OrderRequest)]
        outs.append([r.encode() for r in out])
    return outs


@settings(max_examples=300, deadline=None)
@given(
    st.lists(step, min_size=40, max_size=160),
    st.sampled_from(CostMethod),
    st.sampled_from(("0", "0.2", "2.0")),
    st.sampled_from(("0", "0.1", "1.5")),
    st.sampled_from(("0.5", "3", "5000")),
    st.sampled_from(("0.05", "1", "10")),
    st.booleans(),
    st.booleans(),
)
def test_the_quiet_path_gives_the_full_paths_records_and_state(
    script: list[tuple[Any, ...]],
    method: CostMethod,
    stop_loss: str,
    trailing: str,
    max_loss: str,
    max_dd: str,
    breaker_on: bool,
    controls: bool,
) -> None:
    if not controls:  # (a RESUME leaves the account's layer set: every top the full path)
        script = [s for s in script if s[0] != "control"]
    config = RiskConfig(
        cost_method=method,
        stop_loss_percent=Decimal(stop_loss),
        trailing_stop_percent=Decimal(trailing),
        max_loss_threshold=Decimal(max_loss),
        max_drawdown_percent=Decimal(max_dd),
        enable_circuit_breaker=breaker_on,
        starting_equity=Decimal("1000"),
    )
    quiet, full = RiskProcessor(config), FullMarks(config)
    assert _run(quiet, script) == _run(full, script)
    assert quiet.to_state() == full.to_state()


def test_a_funding_that_raises_equity_moves_the_peak_on_the_next_same_mark() -> None:
    """The same mark again skips the mark, but not a peak that a funding raised."""
    p = RiskProcessor(RiskConfig(starting_equity=Decimal("1000")))
    p.on_book_top(top(BTC, "99", "101", 1))
    p.on_order_event(fill("f1", Side.BUY, "1", "100", ts=2))
    ledger = p.ledger("paper")
    ledger.positions[BTC].apply_funding(Decimal("5"))
    assert ledger.peak_equity < ledger.equity
    p.on_book_top(top(BTC, "99", "101", 3 * SECOND))
    assert ledger.peak_equity == ledger.equity


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(Side), st.sampled_from(("0.1", "1", "2.5"))),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(CostMethod),
    st.sampled_from(("99.5", "100", "101.25", None)),
)
def test_records_built_without_validation_equal_the_validated_ones(
    fills: list[tuple[Side, str]], method: CostMethod, mark: str | None
) -> None:
    ledger = AccountLedger("paper", method, Decimal("1000"))
    for i, (side, qty) in enumerate(fills):
        ledger.apply_fill(BTC, side, Decimal(qty), Decimal(100 + i), Decimal("0.01"))
    if mark is not None:
        ledger.set_mark(BTC, Decimal(mark))
    pos = ledger.positions[BTC]
    built = [
        pos.to_record(ts_event=5, ts_init=6, cause_id="c"),
        ledger.pnl_record(ts_event=5, ts_init=6, cause_id="c"),
    ]
    for record in built:
        data = {k: v for k, v in record.__dict__.items() if k in record.model_fields_set}
        validated = type(record)(**data)
        assert record == validated
        assert record.encode() == validated.encode()
        assert record.model_fields_set == validated.model_fields_set
        assert list(record.__dict__) == list(type(record).model_fields)
    assert isinstance(built[0], Position) and isinstance(built[1], PnL)


def test_a_loss_within_the_record_interval_trips_on_that_top() -> None:
    """No record is due yet, but the mark breaks the loss limit: the breaker trips on
    that top, as the full path trips it."""
    config = RiskConfig(
        starting_equity=Decimal("1000"),
        max_loss_threshold=Decimal("3"),
        stop_loss_percent=Decimal("0"),
        trailing_stop_percent=Decimal("0"),
    )
    script: list[tuple[Any, ...]] = [
        ("top", BTC, 0, "both", 5, "fresh", 1),
        ("fill", BTC, Side.BUY, "2"),
        *[("top", BTC, -30, "both", 100, "fresh", 1) for _ in range(8)],
    ]
    quiet, full = RiskProcessor(config), FullMarks(config)
    got = _run(quiet, script)
    assert got == _run(full, script)
    # 2 units down 0.30 a top: the loss passes 3 on the sixth top, 0.6 s after the fill
    assert [i for i, out in enumerate(got) if any(b'"BREAKER_TRIPPED"' in r for r in out)] == [7]
