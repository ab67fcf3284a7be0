"""The compiled book path's imbalance without Decimals (``_fastbook.fixed_imbalance``, what
``_imbalance`` runs on a top's fixed-point sums) is ``float(Decimal(b - a) / Decimal(b + a))``
to the bit, and does what that division does to the context: the fast way only where the
division would do nothing but round (ROUND_HALF_EVEN, no trap on Inexact or Rounded, its
flags already raised when the quotient is inexact, an exponent range it cannot leave),
the division itself anywhere else.

Values: random sums of every size up to the precision (the 128-bit way and the Python
integers' way), exact quotients, quotients exactly halfway between two ``prec``-digit
neighbours (``N / 2**x``: the rounding's tie) and within ``1 / (2 * (b + a))`` of such a
tie, in several precisions. Also: records whose numbers are spelled every way ``Decimal``
writes them go the compiled path from records as the Python path and the bytes go.
"""

from __future__ import annotations

import decimal
from decimal import Decimal, Inexact, Rounded, localcontext
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from test_marketdata_record_only import run_records

from algostream.marketdata import native
from algostream.model import BookUpdate
from algostream.model.enums import BookUpdateKind

pytestmark = pytest.mark.skipif(
    native.fast_books_type() is None, reason="the compiled book path is not built"
)


def fb() -> Any:
    from algostream.marketdata import _fastbook

    return _fastbook


def formula(b: int, a: int) -> float | None:
    """Today's (the Python path's) imbalance of top sums ``b`` and ``a``."""
    return None if b + a == 0 else float(Decimal(b - a) / Decimal(b + a))


def flagged(prec: int = 28) -> decimal.Context:
    """The default context (as a run leaves it: Inexact and Rounded raised)."""
    return decimal.Context(prec=prec, rounding=decimal.ROUND_HALF_EVEN, flags=[Inexact, Rounded])


def same(b: int, a: int, prec: int = 28) -> None:
    with localcontext(flagged(prec)):
        want = formula(b, a)
        got, fast = fb().fixed_imbalance(b, a)
    assert fast, (b, a, prec)
    assert got == want and repr(got) == repr(want), (b, a, prec, got, want)


def test_the_decimal_context_layout_is_read() -> None:
    """(Else every imbalance takes the Decimal division: right, but not what is tested.)"""
    assert fb()._layout is not None


sums = st.integers(min_value=0, max_value=10**28 - 1)
tens = st.integers(min_value=0, max_value=27)


@settings(max_examples=3000, deadline=None)
@given(sums, sums, tens)
@example(0, 0, 0)
@example(5, 5, 0)
@example(7, 0, 0)
@example(0, 7, 0)
@example(10**28 - 2, 1, 0)
@example(1, 10**28 - 2, 0)
@example(10**27, 10**27 - 1, 0)
def test_random_sums(b: int, a: int, ten: int) -> None:
    """Sums of every size; both a multiple of 10**ten (fixed-point quantities' zeros)."""
    b, a = (b // 10**ten) * 10**ten, (a // 10**ten) * 10**ten
    if b + a >= 10**28:
        b //= 2
        a //= 2
    same(b, a)


@settings(max_examples=2000, deadline=None)
@given(st.sampled_from((28, 28, 28, 5, 17, 37)), st.integers(min_value=1, max_value=125), st.data())
def test_exact_ties(prec: int, x: int, data: st.DataObject) -> None:
    """q = n / 2**x, n odd: the exact quotient is n * 5**x / 10**x; n is drawn so that it
    has prec + 1 significant digits, the last a 5: a tie at prec, rounded to even."""
    lo, hi = -(-(10**prec) // 5**x), min(10 ** (prec + 1) // 5**x, 2**x - 1)
    if lo > hi or 2 ** (x + 1) >= 10**prec:
        return
    n = data.draw(st.integers(min_value=lo, max_value=hi)) | 1
    if n > hi:
        n -= 2
    if n < lo:
        return
    digits = str(n * 5**x)
    assert len(digits) == prec + 1 and digits.endswith("5")
    # b - a = 2n, b + a = 2**(x + 1): the same quotient, and b, a whole
    b, a = n + 2**x, 2**x - n
    same(b, a, prec)
    same(a, b, prec)
    digits_of(2 * n, 2 ** (x + 1), prec)
    digits_of(-2 * n, 2 ** (x + 1), prec)


def digits_of(n: int, d: int, prec: int) -> None:
    """The rounded quotient itself (the float rarely shows its last digit): the value and
    exactness the Decimal division gives."""
    with localcontext(decimal.Context(prec=prec, flags=[], traps=[])) as ctx:
        want = Decimal(n) / Decimal(d)
        inexact = ctx.flags[Inexact]
    c, shift, exact = fb().rounded_quotient(n, d, prec)
    assert Fraction(c, 10**shift) == Fraction(want), (n, d, prec, c, shift, want)
    assert exact == (not inexact)


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from((1, 2, 5, 17, 27, 28, 29, 36, 37)), st.integers(0, 20), st.data())
def test_rounded_quotients(prec: int, ten: int, data: st.DataObject) -> None:
    """Both ways (128-bit where the divisor is small enough, else Python integers)."""
    d = data.draw(st.integers(min_value=1, max_value=10**prec - 1))
    n = data.draw(st.integers(min_value=1, max_value=d))
    if d * 10**ten < 10**prec:
        d, n = d * 10**ten, n * 10**ten
    digits_of(n, d, prec)
    digits_of(-n, d, prec)


@settings(max_examples=2000, deadline=None)
@given(
    st.integers(min_value=10**27, max_value=10**28 - 1),
    st.integers(min_value=0, max_value=30),
    st.integers(min_value=2, max_value=10**28 - 1),
    st.sampled_from((-1, 0, 1)),
)
def test_near_ties(c: int, s: int, d: int, nudge: int) -> None:
    """q within 1 / (2d) of the tie (c + 1/2) * 10**-(27 + s) (and one step either side)."""
    num = ((2 * c + 1) * d) // (2 * 10 ** (27 + s)) + nudge
    if 0 < num <= d and (d - num) % 2 == 0:  # b - a = num, b + a = d
        b, a = (d + num) // 2, (d - num) // 2
        same(b, a)
        same(a, b)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from((1, 2, 5, 16, 17, 27, 28, 29, 36, 37)), st.data())
def test_other_precisions(prec: int, data: st.DataObject) -> None:
    b = data.draw(st.integers(min_value=0, max_value=10**prec - 1))
    a = data.draw(st.integers(min_value=0, max_value=10**prec - 1 - b))
    same(b, a, prec)


@pytest.mark.parametrize(
    "change",
    [
        {"rounding": decimal.ROUND_HALF_UP},
        {"rounding": decimal.ROUND_DOWN},
        {"Emin": -20},
        {"Emax": 5},
        {"prec": 38},
    ],
)
def test_another_context_takes_the_decimal_division(change: dict[str, Any]) -> None:
    for b, a in ((1, 2), (2, 1), (10**20 + 7, 3), (5, 5), (123456789, 987654321)):
        ctx = flagged()
        for name, value in change.items():
            setattr(ctx, name, value)
        with localcontext(ctx):
            want = formula(b, a)
            got, fast = fb().fixed_imbalance(b, a)
        assert not fast and got == want, (change, b, a)


def test_flags_and_traps_as_the_division_leaves_them() -> None:
    """An inexact quotient raises Inexact and Rounded (the first time: the division);
    an exact one raises none; a trap on either raises as the division does."""
    with localcontext(decimal.Context(prec=28, flags=[])) as ctx:
        assert fb().fixed_imbalance(3, 1) == (0.5, True)  # exact
        assert not ctx.flags[Inexact] and not ctx.flags[Rounded]
        got, fast = fb().fixed_imbalance(2, 1)
        assert (got, fast) == (formula(2, 1), False)
        assert ctx.flags[Inexact] and ctx.flags[Rounded]
        assert fb().fixed_imbalance(2, 1) == (formula(2, 1), True)
    for trap in (Inexact, Rounded):
        with localcontext(decimal.Context(prec=28, flags=[Inexact, Rounded], traps=[trap])):
            assert fb().fixed_imbalance(3, 1)[0] == 0.5
            with pytest.raises(trap):
                fb().fixed_imbalance(2, 1)


# ------------------------------------------------------- numbers spelled every way


def spelled(seed: int) -> list[BookUpdate]:
    """A book whose levels' numbers come in every spelling ``str(Decimal)`` has: plain,
    exponents (``1E+1``, ``1E-7``), zeros (``0``, ``0E-8``, ``0.0``), trailing zeros past
    18 decimals, the same value in two spellings."""
    import random

    rng = random.Random(seed)
    prices = ["100", "100.0", "1E+2", "99.5", "99.50", "101", "1.01E+2", "100.5", "102"]
    quantities = [
        "1", "1.0", "1E+1", "0.0000001", "1E-7", "0.000001", "2.50", "3.0000000000000000000",
        "0", "0E-8", "0.0", "12.05530000", "7",
    ]  # fmt: skip
    out = [
        BookUpdate(
            instrument="SIM:X",
            ts_event=1,
            ts_init=2,
            record_id="s1",
            lineage_id="raw1",
            kind=BookUpdateKind.SNAPSHOT,
            bids=((Decimal("99"), Decimal("1")),),
            asks=((Decimal("103"), Decimal("1")),),
            first_update_id=1,
            final_update_id=1,
        )
    ]
    for i in range(2, 400):
        ask = rng.random() < 0.5
        price = Decimal(rng.choice(prices)) + (3 if ask else -2)
        level = ((price, Decimal(rng.choice(quantities))),)
        out.append(
            BookUpdate(
                instrument="SIM:X",
                ts_event=i,
                ts_init=i + 1,
                record_id=f"s{i}",
                lineage_id=f"raw{i}",
                kind=BookUpdateKind.DELTA,
                bids=() if ask else level,
                asks=level if ask else (),
                first_update_id=i,
                final_update_id=i,
            )
        )
    return out


@pytest.mark.parametrize("seed", range(3))
def test_numbers_in_every_spelling(seed: int) -> None:
    stream = spelled(seed)
    n = len(stream)
    python = run_records(stream, 3, ["python"] * n)
    records = run_records(stream, 3, ["record"] * n)
    both = run_records(stream, 3, ["record", "bytes"] * (n // 2) + ["record"] * (n % 2))
    assert records == python
    assert both == python


# ------------------------------------------------- a record's numbers, read from the Decimal


def test_the_decimal_layout_is_read() -> None:
    """(Else records' numbers go by their text: right, but not what is tested.)"""
    assert fb().DECIMAL_LAYOUT


def shapes() -> st.SearchStrategy[Decimal]:
    """Decimals of every shape: any sign, up to 40 digits, exponents from -1100 to 1100
    (zeros too), trailing zeros, NaN, sNaN, infinities."""
    finite = st.builds(
        lambda sign, coef, zeros, exp: Decimal((sign, tuple(map(int, str(coef * 10**zeros))), exp)),
        st.integers(0, 1),
        st.one_of(st.integers(0, 10**6), st.integers(0, 10**40), st.just(0)),
        st.integers(0, 12),
        st.one_of(st.integers(-30, 12), st.integers(-1100, 1100)),
    )
    special = st.sampled_from(
        [Decimal(x) for x in ("NaN", "-NaN", "sNaN", "Infinity", "-Infinity")]
    )
    return st.one_of(finite, special)


@settings(max_examples=4000, deadline=None)
@given(shapes(), st.booleans())
@example(Decimal("0E-1000"), False)
@example(Decimal("0E+1001"), False)
@example(Decimal("-0E-8"), False)
@example(Decimal("-0"), True)
@example(Decimal("1E-18"), True)
@example(Decimal("1E-19"), True)
@example(Decimal("1" + "0" * 18), False)
@example(Decimal("1" + "0" * 19), False)
@example(Decimal("9" * 36 + "E-18"), False)
@example(Decimal("9" * 37 + "E-18"), False)
def test_a_decimal_read_as_its_text_reads(dec: Decimal, price: bool) -> None:
    """The value (and acceptance) read from the Decimal are its text's, and the text it
    gives when asked is ``str(dec)``; no context flag moves either way."""
    with localcontext(decimal.Context(flags=[])) as ctx:
        by_text = fb().number_of(dec, price, False)
        flags_text = [s for s, on in ctx.flags.items() if on]
    with localcontext(decimal.Context(flags=[])) as ctx:
        by_value = fb().number_of(dec, price, True)
        flags_value = [s for s, on in ctx.flags.items() if on]
    assert by_value == by_text, (dec, price)
    assert flags_value == flags_text
    if by_value is not None:
        assert by_value[1] == str(dec)


@pytest.mark.parametrize("qty", [str(2**110), "1701403038511670107900", "9" * 36])
def test_a_plain_quantity_past_the_fixed_point(qty: str) -> None:
    """A quantity in plain form whose value * 10**18 passes 2**127 went the fixed point's
    way and wrapped (2**110 read as zero: the level was removed); it goes the Python
    path's way, from bytes and from records."""

    def update(i: int, kind: BookUpdateKind, bids: Any, asks: Any) -> BookUpdate:
        return BookUpdate(
            instrument="SIM:X",
            ts_event=i,
            ts_init=i,
            record_id=f"r{i}",
            lineage_id="l",
            kind=kind,
            bids=bids,
            asks=asks,
            first_update_id=i,
            final_update_id=i,
        )

    one = Decimal(1)
    stream = [
        update(1, BookUpdateKind.SNAPSHOT, ((Decimal(99), one),), ((Decimal(101), one),)),
        update(2, BookUpdateKind.DELTA, ((Decimal(99), Decimal(2)),), ()),
        update(3, BookUpdateKind.DELTA, ((Decimal(98), Decimal(qty)),), ()),
    ]
    python = run_records(stream, 3, ["python"] * 3)
    assert qty.encode() in python[0][2][0]
    assert run_records(stream, 3, ["bytes"] * 3) == python
    assert run_records(stream, 3, ["record"] * 3) == python
