"""A book top's quiet path gives what the full mark path gives (property tests).

``RiskProcessor.on_book_top`` skips the full path (stops, breaker, throttled records) for
a top that can change nothing but the mark. These tests drive random tops (the same mid
again, one-sided books, moves that reach the stops), fills, integrity events and time
through two processors, one of them marking every top by the full path as it always
did, and require the same output records, byte for byte, and the same state after each
step. Position/PnL records built without validation equal the validated ones.

What a quiet top found is kept per position (``RiskProcessor._quiet``) and answers the
next tops while nothing it depends on changed: the driver reuses the previous top's
Decimal objects (as the compiled book path does), and the scripted tests below each
break one thing the kept answer depends on (the record interval, a stop reached, the
trailing reference, a re-armed stop, a funding, a one-sided book, a peak written from
outside) with the kept answer in use, and compare after every step.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from algostream.config import RiskConfig
from algostream.model import (
    ControlAction,
    CostMethod,
    IntegrityKind,
    OrderStatus,
    Side,
    TradingState,
)
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
    st.tuples(st.just("peak"), st.sampled_from(("0", "20"))),
    # the venue's answer to the oldest proposal (a stop's close): cancelled re-arms the
    # stop, filled closes the position
    st.tuples(st.just("venue"), st.sampled_from(("cancel", "fill"))),
    st.tuples(
        st.just("control"),
        st.sampled_from((ControlAction.HALT, ControlAction.REDUCE, *[ControlAction.RESUME] * 6)),
    ),
)


def _top(
    inst: str, mid: Decimal, sides: str, form: str, ts: int, rid: str, seen: dict[str, Any]
) -> BookTop:
    if form == "scaled":
        mid = mid.quantize(Decimal("0.001"))
    bid = mid - Decimal("0.01") if sides in ("both", "bid") else None
    ask = mid + Decimal("0.01") if sides in ("both", "ask") else None
    made = top(inst, None if bid is None else str(bid), None if ask is None else str(ask), ts, rid)
    if form == "same":
        # the objects seen last for each price that is the same (value and exponent)
        same: dict[str, Any] = {}
        for name in ("best_bid", "best_ask", "mid"):
            new, old = getattr(made, name), seen.get(name)
            if new is not None and old is not None and new == old and new.same_quantum(old):
                same[name] = old
        if "best_bid" in same:
            same["bids"] = seen["bids"]
        if "best_ask" in same:
            same["asks"] = seen["asks"]
        made = made.model_copy(update=same)
    for name in ("best_bid", "best_ask", "mid"):
        if getattr(made, name) is not None:
            seen[name] = getattr(made, name)
    seen["bids"], seen["asks"] = made.bids, made.asks
    return made


def _run(
    p: RiskProcessor, script: list[tuple[Any, ...]], states: list[Any] | None = None
) -> list[list[bytes]]:
    """Each step's output records (encoded); ``states``: the state after each step."""
    mids = {BTC: Decimal("100.00"), ETH: Decimal("50.00")}
    seen: dict[str, dict[str, Any]] = {BTC: {}, ETH: {}}
    proposals: list[OrderRequest] = []
    ts, outs = 100 * SECOND, []  # (tops out of order stay after 0)
    for n, s in enumerate(script, 1):
        ledger = p.ledgers.get(ACCOUNT)
        if s[0] == "top":
            _, inst, move, sides, gap_ms, form, repeat = s
            mids[inst] += Decimal(move) / 100
            out = []
            for k in range(repeat):
                ts += gap_ms * 1_000_000
                made = _top(inst, mids[inst], sides, form, ts, f"top-{n}-{k}", seen[inst])
                out += p.on_book_top(made)
        elif s[0] == "fill":
            _, inst, side, qty = s
            price = str(mids[inst])
            out = p.on_order_event(fill(f"fill-{n}", side, qty, price, "0.01", inst, ts=ts))
        elif s[0] == "integrity":
            out = p.on_integrity(integrity(s[2], s[1], ts))
        elif s[0] == "funding":
            pos = None if ledger is None else ledger.positions.get(s[1])
            if pos is not None:
                pos.apply_funding(Decimal(s[2]))
            out = []
        elif s[0] == "peak":  # the peak written from outside (as the bar engine does)
            if ledger is not None:
                ledger.peak_equity = ledger.equity + Decimal(s[1])
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
        if states is not None:
            states.append(p.to_state())
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


class Watched(RiskProcessor):
    """Counts the tops of an open position that the kept quiet answer took (neither
    found quiet again nor through the full path)."""

    kept = 0

    def on_book_top(self, top: BookTop, now_ns: int | None = None) -> list[Record]:
        ledger = self.ledgers.get(ACCOUNT)
        pos = None if ledger is None else ledger.positions.get(top.instrument)
        self._asked = False
        out = super().on_book_top(top, now_ns)
        if pos is not None and pos.quantity and not self._asked:
            self.kept += 1
        return out

    def _found_quiet(self, *args: Any, **kwargs: Any) -> None:
        self._asked = True
        super()._found_quiet(*args, **kwargs)

    def _mark_outputs(self, ledger: AccountLedger, top: BookTop, now: int) -> list[Record]:
        self._asked = True
        return super()._mark_outputs(ledger, top, now)


def _alike(config: RiskConfig, script: list[tuple[Any, ...]]) -> list[list[bytes]]:
    """``script`` through a processor and the full-path reference: the same records at
    every step and the same state after every step; the records."""
    quiet, full = Watched(config), FullMarks(config)
    states: list[Any] = []
    reference: list[Any] = []
    got = _run(quiet, script, states)
    assert got == _run(full, script, reference)
    assert states == reference
    assert quiet.kept, "no top took the kept quiet answer: the shortcut was not tried"
    return got


def _steps_with(kind: bytes, outs: list[list[bytes]]) -> list[int]:
    return [i for i, out in enumerate(outs) if any(kind in r for r in out)]


STOPS = RiskConfig(
    starting_equity=Decimal("1000"),
    stop_loss_percent=Decimal("2"),
    trailing_stop_percent=Decimal("0"),
)
#: + how many: tops of the same objects 0.1 s apart (a top first: the fill marks at its mid
#: object, as in a run)
SAME = ("top", BTC, 0, "both", 100, "same")


def test_quiet_tops_still_give_their_records_once_an_interval() -> None:
    """Tops of the same objects 0.3 s apart: a Position/PnL pair each second (the kept
    record time is the one written last)."""
    outs = _alike(
        STOPS, [(*SAME, 1), ("fill", BTC, Side.BUY, "1"), ("top", BTC, 0, "both", 300, "same", 11)]
    )
    assert sum(b'"cost_method"' in r for r in outs[2]) == 2  # Positions: at 1.2 s and 2.4 s


def test_a_mark_that_moves_to_the_stop_fires_it_on_that_top() -> None:
    outs = _alike(
        STOPS,
        [
            (*SAME, 1),
            ("fill", BTC, Side.BUY, "1"),
            (*SAME, 3),
            ("top", BTC, -120, "both", 100, "same", 1),  # bid 98.79: quiet
            (*SAME, 2),
            ("top", BTC, -130, "both", 100, "same", 1),  # bid 97.49: below 98
        ],
    )
    assert _steps_with(b'"STOP_HIT"', outs) == [5]


def test_the_trailing_reference_follows_every_top() -> None:
    """A short's trailing low set by the tops between the records (compared in the
    state after every step)."""
    config = RiskConfig(starting_equity=Decimal("1000"), trailing_stop_percent=Decimal("0.5"))
    down = ("top", BTC, -5, "both", 100, "same", 3)
    outs = _alike(config, [(*SAME, 1), ("fill", BTC, Side.SELL, "1"), *[down] * 6, (*SAME, 1)])
    up = _alike(
        config,
        [
            (*SAME, 1),
            ("fill", BTC, Side.SELL, "1"),
            *[down] * 6,
            ("top", BTC, 50, "both", 100, "same", 1),
        ],
    )
    assert not _steps_with(b'"STOP_HIT"', outs)
    assert _steps_with(b'"STOP_HIT"', up) == [8]  # 99.70 + 0.5 %: the ask 100.21 reaches it


def test_a_stop_rearmed_by_a_cancelled_close_fires_again() -> None:
    outs = _alike(
        STOPS,
        [
            (*SAME, 1),
            ("fill", BTC, Side.BUY, "1"),
            (*SAME, 2),
            ("top", BTC, -250, "both", 100, "same", 1),  # fires
            (*SAME, 2),  # fired: nothing to watch
            ("venue", "cancel"),  # its close cancelled: re-armed
            (*SAME, 1),
        ],
    )
    assert _steps_with(b'"STOP_HIT"', outs) == [3, 6]


def test_a_funding_then_the_same_mark_object_moves_the_peak() -> None:
    script = [
        (*SAME, 1),
        ("fill", BTC, Side.BUY, "1"),
        (*SAME, 3),
        ("funding", BTC, "5"),
        (*SAME, 1),
    ]
    _alike(STOPS, script)
    p = RiskProcessor(STOPS)
    _run(p, script)
    assert p.ledgers[ACCOUNT].peak_equity == p.ledgers[ACCOUNT].equity


def test_a_funding_then_a_top_without_a_mid_keeps_nothing_of_the_peak() -> None:
    """Equity over the peak and no mark to raise it (a one-sided book): what that top
    found is not kept, so the next top of the same mark object raises the peak."""
    script = [
        (*SAME, 1),
        ("fill", BTC, Side.BUY, "1"),
        (*SAME, 3),
        ("funding", BTC, "5"),
        ("top", BTC, 0, "bid", 100, "same", 1),
        (*SAME, 1),
    ]
    _alike(STOPS, script)


def test_a_peak_written_from_outside_is_checked_on_the_next_top() -> None:
    """The bar engine writes ``peak_equity`` itself: the drawdown it makes trips the
    breaker on the next top, the same mark object or not."""
    config = RiskConfig(starting_equity=Decimal("1000"), max_drawdown_percent=Decimal("1"))
    outs = _alike(
        config, [(*SAME, 1), ("fill", BTC, Side.BUY, "1"), (*SAME, 3), ("peak", "20"), (*SAME, 1)]
    )
    assert _steps_with(b'"BREAKER_TRIPPED"', outs) == [4]


def test_an_account_the_operator_resumed_takes_the_quiet_path_again() -> None:
    """HALT then RESUME leaves no account layer set (ACTIVE is no entry, as for an
    instrument): the tops after it take the kept quiet answer again, with the full
    path's records and state. (The account layer kept an ACTIVE entry, so every top of
    a resumed account took the full path for good, saved state included.)"""
    quiet = Watched(STOPS)
    script: list[tuple[Any, ...]] = [
        (*SAME, 1),
        ("fill", BTC, Side.BUY, "1"),
        ("control", ControlAction.HALT),
        ("control", ControlAction.RESUME),
        ("top", BTC, 0, "both", 100, "same", 6),
    ]
    full = FullMarks(STOPS)
    states: list[Any] = []
    reference: list[Any] = []
    assert _run(quiet, script, states) == _run(full, script, reference)
    assert states == reference
    assert states[-1]["breaker"]["accounts"] == {}
    assert quiet.kept >= 4, "the resumed account's tops did not take the quiet path"


def test_a_saved_active_account_layer_is_no_layer_when_restored() -> None:
    """Risk state saved before ACTIVE meant no entry (``{"paper": "ACTIVE"}``) restores
    as no layer set; a HALTED one stays."""
    p = RiskProcessor(STOPS)
    p.on_control(control(ControlAction.HALT, ts=SECOND))
    saved = p.to_state()
    assert saved["breaker"]["accounts"] == {ACCOUNT: "HALTED"}
    saved["breaker"]["accounts"] = {ACCOUNT: "ACTIVE"}
    saved["breaker"]["instruments"] = [[ACCOUNT, BTC, "ACTIVE"]]
    restored = RiskProcessor.from_state(STOPS, None, saved)
    assert restored.to_state()["breaker"]["accounts"] == {}
    assert restored.to_state()["breaker"]["instruments"] == []
    assert restored.breaker.state(ACCOUNT, BTC) is TradingState.ACTIVE
