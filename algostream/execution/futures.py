"""USDⓈ-M perpetual futures accounting, pure logic: signed positions (short is a
first-class state), leverage and margin (isolated or cross), initial and maintenance
margin from leverage brackets, liquidation price, funding payments, reduce-only checks.

All money is Decimal in the quote (margin) asset. Formulas follow Binance's USDⓈ-M
documentation, with one position per instrument (one-way mode):

* notional = ``|qty| * mark``; initial margin = notional / leverage; maintenance margin =
  notional * maintenance rate - maintenance amount of the notional's bracket;
* unrealised P&L = ``qty * (mark - entry)`` (``qty`` < 0 for a short);
* isolated liquidation price: where ``margin + qty * (P - entry) = |qty| * P * mmr - cum``;
  cross: the same with the account's wallet balance in place of the isolated margin;
* funding at a funding time: ``payment = -qty * mark * rate`` (positive rate: longs pay
  shorts), applied once per funding time.

>>> acct = FuturesAccount(wallet=Decimal("1000"))
>>> pos = acct.position("BINANCE_USDM:BTCUSDT", leverage=10)
>>> _ = acct.fill("BINANCE_USDM:BTCUSDT", Side.SELL, Decimal("0.1"), Decimal("30000"))
>>> pos.qty, pos.entry_price, acct.initial_margin(pos, Decimal("30000"))
(Decimal('-0.1'), Decimal('30000'), Decimal('300.0'))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from algostream.execution.errors import ExecutionError
from algostream.model.enums import Side

_ZERO = Decimal(0)


class MarginMode(StrEnum):
    ISOLATED = "ISOLATED"
    CROSS = "CROSS"


class FuturesError(ExecutionError):
    """A futures order or setting refused: names the field, the value and the limit."""

    def __init__(self, reason: str, field: str, value: object, limit: object, message: str):
        self.reason = reason
        self.field = field
        self.value = str(value)
        self.limit = str(limit)
        super().__init__(f"{reason}: {field}={value} ({message}; limit {limit})")


@dataclass(frozen=True)
class LeverageBracket:
    """Up to ``notional_cap``: at most ``max_leverage``, maintenance ``mmr`` and ``cum``."""

    notional_cap: Decimal
    max_leverage: int
    mmr: Decimal
    cum: Decimal = _ZERO


#: Binance's published BTCUSDT brackets (first tiers), as a default
DEFAULT_BRACKETS = (
    LeverageBracket(Decimal("50000"), 125, Decimal("0.004"), _ZERO),
    LeverageBracket(Decimal("250000"), 100, Decimal("0.005"), Decimal("50")),
    LeverageBracket(Decimal("3000000"), 50, Decimal("0.01"), Decimal("1300")),
    LeverageBracket(Decimal("15000000"), 20, Decimal("0.025"), Decimal("46300")),
    LeverageBracket(Decimal("30000000"), 10, Decimal("0.05"), Decimal("421300")),
)


def bracket_for(notional: Decimal, brackets: tuple[LeverageBracket, ...]) -> LeverageBracket:
    """The bracket holding ``notional`` (the last one above every cap)."""
    return next((b for b in brackets if notional <= b.notional_cap), brackets[-1])


@dataclass
class FuturesPosition:
    """One instrument's position in one-way mode: ``qty`` > 0 long, < 0 short."""

    instrument: str
    leverage: int = 20
    margin_mode: MarginMode = MarginMode.CROSS
    qty: Decimal = _ZERO
    entry_price: Decimal = _ZERO
    isolated_margin: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    fees: Decimal = _ZERO
    funding: Decimal = _ZERO  # received (+) / paid (-)
    funded_at: set[int] = field(default_factory=set)

    @property
    def side(self) -> str:
        """LONG, SHORT or FLAT."""
        return "LONG" if self.qty > 0 else "SHORT" if self.qty < 0 else "FLAT"

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        return self.qty * (mark - self.entry_price)

    def notional(self, mark: Decimal) -> Decimal:
        return abs(self.qty) * mark


@dataclass
class FuturesAccount:
    """Wallet and positions of one futures account (see the module docstring)."""

    wallet: Decimal
    brackets: tuple[LeverageBracket, ...] = DEFAULT_BRACKETS
    positions: dict[str, FuturesPosition] = field(default_factory=dict)

    def position(
        self, instrument: str, *, leverage: int | None = None, mode: MarginMode | None = None
    ) -> FuturesPosition:
        """The instrument's position (created flat); ``leverage`` / ``mode`` set them,
        refused above the first bracket's maximum or while a position is open (mode)."""
        pos = self.positions.setdefault(instrument, FuturesPosition(instrument))
        if leverage is not None:
            top = self.brackets[0].max_leverage
            if not 1 <= leverage <= top:
                raise FuturesError(
                    "LEVERAGE_ABOVE_BRACKET", "leverage", leverage, top, "1..max of the bracket"
                )
            pos.leverage = leverage
        if mode is not None and mode is not pos.margin_mode:
            if pos.qty != 0:
                raise FuturesError(
                    "MARGIN_MODE_WITH_POSITION", "margin_mode", mode.value, "FLAT",
                    f"{instrument} has an open position",
                )  # fmt: skip
            pos.margin_mode = mode
        return pos

    # ------------------------------------------------------------------ margin

    def initial_margin(self, pos: FuturesPosition, mark: Decimal) -> Decimal:
        return pos.notional(mark) / pos.leverage

    def maintenance_margin(self, pos: FuturesPosition, mark: Decimal) -> Decimal:
        notional = pos.notional(mark)
        b = bracket_for(notional, self.brackets)
        return max(_ZERO, notional * b.mmr - b.cum)

    def equity(self, marks: dict[str, Decimal]) -> Decimal:
        """Wallet + unrealised P&L of every position (missing marks: at entry)."""
        return self.wallet + sum(
            (p.unrealized_pnl(marks.get(i, p.entry_price)) for i, p in self.positions.items()),
            _ZERO,
        )

    def available_margin(self, marks: dict[str, Decimal]) -> Decimal:
        """Equity less the initial margin of cross positions and isolated margins."""
        used = _ZERO
        for inst, pos in self.positions.items():
            mark = marks.get(inst, pos.entry_price)
            if pos.margin_mode is MarginMode.ISOLATED:
                used += pos.isolated_margin - pos.unrealized_pnl(mark)
            else:
                used += self.initial_margin(pos, mark)
        return self.equity(marks) - used

    def liquidation_price(
        self, pos: FuturesPosition, mark: Decimal, marks: dict[str, Decimal] | None = None
    ) -> Decimal | None:
        """The mark at which maintenance margin = the position's margin (None: flat or
        no such price). Isolated: the position's margin. Cross: the wallet, and with
        ``marks`` the account's equity: less isolated margins, plus the other cross
        positions' unrealised P&L less their maintenance margin at their marks."""
        if pos.qty == 0:
            return None
        b = bracket_for(pos.notional(mark), self.brackets)
        if pos.margin_mode is MarginMode.ISOLATED:
            margin = pos.isolated_margin
        elif marks is None:
            margin = self.wallet
        else:
            margin = self.cross_wallet() + sum(
                (
                    p.unrealized_pnl(marks.get(i, p.entry_price))
                    - self.maintenance_margin(p, marks.get(i, p.entry_price))
                    for i, p in self.positions.items()
                    if p is not pos and p.qty and p.margin_mode is MarginMode.CROSS
                ),
                _ZERO,
            )
        q = pos.qty
        denom = q - abs(q) * b.mmr
        if denom == 0:
            return None
        price = (q * pos.entry_price - margin - b.cum) / denom
        return price if price > 0 else None

    def cross_wallet(self) -> Decimal:
        """The wallet less the isolated positions' margin (what backs cross positions)."""
        return self.wallet - sum(
            (p.isolated_margin for p in self.positions.values() if p.qty and
             p.margin_mode is MarginMode.ISOLATED),
            _ZERO,
        )  # fmt: skip

    def liquidations(self, marks: dict[str, Decimal]) -> list[tuple[FuturesPosition, Decimal]]:
        """The positions ``marks`` liquidate, each with its closing price.

        * Isolated: a long whose mark is at or below its liquidation price (a short: at or
          above) closes at the liquidation price (its loss is its margin less the
          maintenance margin);
        * cross: when the cross equity (:meth:`cross_wallet` + every cross position's
          unrealised P&L) is at or below their summed maintenance margin, every cross
          position closes at its mark (Binance liquidates a cross account as a whole).

        Positions without a mark are not judged."""
        out: list[tuple[FuturesPosition, Decimal]] = []
        cross = []
        for inst, pos in self.positions.items():
            if not pos.qty or inst not in marks:
                continue
            if pos.margin_mode is MarginMode.CROSS:
                cross.append(pos)
                continue
            mark = marks[inst]
            liq = self.liquidation_price(pos, mark)
            if liq is not None and (mark <= liq if pos.qty > 0 else mark >= liq):
                out.append((pos, liq))
        if cross:
            all_cross = [
                (p, marks.get(i, p.entry_price))
                for i, p in self.positions.items()
                if p.qty and p.margin_mode is MarginMode.CROSS
            ]
            equity = self.cross_wallet() + sum((p.unrealized_pnl(m) for p, m in all_cross), _ZERO)
            maintenance = sum((self.maintenance_margin(p, m) for p, m in all_cross), _ZERO)
            if equity <= maintenance:
                out += [(p, m) for p, m in all_cross]
        return out

    # ------------------------------------------------------------------ fills and funding

    def check_reduce_only(self, instrument: str, side: Side, qty: Decimal) -> None:
        """A reduce-only order must not increase the position nor flip it."""
        pos = self.positions.get(instrument)
        held = pos.qty if pos else _ZERO
        if held == 0 or side.sign * held > 0 or qty > abs(held):
            raise FuturesError(
                "REDUCE_ONLY_WOULD_INCREASE", "quantity", f"{side.value} {qty}", f"{-held}",
                f"position {held} in {instrument}",
            )  # fmt: skip

    def check_order(
        self,
        instrument: str,
        side: Side,
        qty: Decimal,
        mark: Decimal,
        marks: dict[str, Decimal],
        *,
        reduce_only: bool = False,
        min_liquidation_distance: Decimal = Decimal("0.05"),
    ) -> None:
        """Risk before an order: reduce-only, bracket notional for the leverage, margin
        available, and the liquidation price at least ``min_liquidation_distance`` (a
        fraction of the mark) away after the fill. Raises :class:`FuturesError`."""
        if reduce_only:
            self.check_reduce_only(instrument, side, qty)
            return
        pos = self.position(instrument)
        after = pos.qty + side.sign * qty
        notional = abs(after) * mark
        b = bracket_for(notional, self.brackets)
        if pos.leverage > b.max_leverage:
            raise FuturesError(
                "LEVERAGE_ABOVE_BRACKET", "leverage", pos.leverage, b.max_leverage,
                f"notional {notional} is in the bracket up to {b.notional_cap}",
            )  # fmt: skip
        extra = max(_ZERO, abs(after) - abs(pos.qty)) * mark / pos.leverage
        available = self.available_margin(marks)
        if extra > available:
            raise FuturesError(
                "INSUFFICIENT_MARGIN", "initial_margin", extra, available, "margin available"
            )
        trial = FuturesPosition(
            instrument, pos.leverage, pos.margin_mode, after,
            _entry_after(pos, side, qty, mark),
            pos.isolated_margin + extra if pos.margin_mode is MarginMode.ISOLATED else _ZERO,
        )  # fmt: skip
        saved = self.positions.get(instrument)
        self.positions[instrument] = trial
        try:
            liq = self.liquidation_price(trial, mark, {**marks, instrument: mark})
        finally:
            if saved is not None:
                self.positions[instrument] = saved
        if liq is not None and abs(mark - liq) / mark < min_liquidation_distance:
            raise FuturesError(
                "TOO_CLOSE_TO_LIQUIDATION", "liquidation_price", liq.quantize(Decimal("0.01")),
                f"{min_liquidation_distance * 100}% from mark {mark}", "after this order",
            )  # fmt: skip

    def fill(
        self, instrument: str, side: Side, qty: Decimal, price: Decimal, fee: Decimal = _ZERO
    ) -> Decimal:
        """Apply one fill; returns the P&L it realised (a reduce or a flip)."""
        if qty <= 0 or price <= 0:
            raise FuturesError("INVALID_FILL", "qty/price", f"{qty}@{price}", "> 0", "fill")
        pos = self.position(instrument)
        signed = side.sign * qty
        realized = _ZERO
        if pos.qty == 0 or pos.qty * signed > 0:  # open or add: weighted entry
            pos.entry_price = _entry_after(pos, side, qty, price)
            if pos.margin_mode is MarginMode.ISOLATED:
                pos.isolated_margin += qty * price / pos.leverage
            pos.qty += signed
        else:
            closed = min(qty, abs(pos.qty))
            realized = closed * (price - pos.entry_price) * (1 if pos.qty > 0 else -1)
            if pos.margin_mode is MarginMode.ISOLATED and pos.qty != 0:
                pos.isolated_margin -= pos.isolated_margin * closed / abs(pos.qty)
            pos.qty += signed
            if pos.qty == 0:
                pos.entry_price = _ZERO
            elif pos.qty * signed > 0:  # flipped: the rest opens at this price
                pos.entry_price = price
                if pos.margin_mode is MarginMode.ISOLATED:
                    pos.isolated_margin = abs(pos.qty) * price / pos.leverage
        pos.realized_pnl += realized
        pos.fees += fee
        self.wallet += realized - fee
        return realized

    def apply_funding(
        self, instrument: str, mark: Decimal, rate: Decimal, funding_ns: int
    ) -> Decimal:
        """Funding at ``funding_ns`` (once per time): returns what the position received
        (negative: paid). A long pays when the rate is positive, a short receives."""
        pos = self.positions.get(instrument)
        if pos is None or pos.qty == 0 or funding_ns in pos.funded_at:
            return _ZERO
        payment = -pos.qty * mark * rate
        pos.funded_at.add(funding_ns)
        pos.funding += payment
        self.wallet += payment
        if pos.margin_mode is MarginMode.ISOLATED:
            pos.isolated_margin += payment
        return payment


def _entry_after(pos: FuturesPosition, side: Side, qty: Decimal, price: Decimal) -> Decimal:
    """The entry price after adding ``qty`` at ``price`` on ``side`` (unchanged on a reduce)."""
    signed = side.sign * qty
    if pos.qty == 0 or pos.qty * signed > 0:
        total = abs(pos.qty) + qty
        return (abs(pos.qty) * pos.entry_price + qty * price) / total
    if abs(signed) > abs(pos.qty):
        return price
    return pos.entry_price


def reconcile_positions(
    account: FuturesAccount, venue: dict[str, Decimal], venue_name: str = "BINANCE_USDM"
) -> list[PositionDiscrepancy]:
    """Local positions against the venue's (``{symbol: signed qty}``, e.g.
    :meth:`~algostream.execution.usdm_client.UsdmRestClient.positions`) on start: every
    symbol whose quantities differ, short and long alike."""
    local = {
        inst.partition(":")[2]: pos.qty
        for inst, pos in account.positions.items()
        if inst.startswith(f"{venue_name}:")
    }
    out = []
    for symbol in sorted(set(local) | set(venue)):
        mine, theirs = local.get(symbol, _ZERO), venue.get(symbol, _ZERO)
        if mine != theirs:
            out.append(PositionDiscrepancy(f"{venue_name}:{symbol}", mine, theirs))
    return out


@dataclass(frozen=True)
class PositionDiscrepancy:
    """A position the venue reports differently: adopt ``venue`` (the venue is the truth).
    ``venue_entry`` / ``venue_mark``: the venue's entry and mark price when known,
    ``local_entry``: our entry price."""

    instrument: str
    local: Decimal
    venue: Decimal
    venue_entry: Decimal | None = None
    venue_mark: Decimal | None = None
    local_entry: Decimal | None = None

    @property
    def difference(self) -> Decimal:
        """What the venue holds beyond ours (signed)."""
        return self.venue - self.local
