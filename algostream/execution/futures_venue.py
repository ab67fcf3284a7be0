"""The trading worker's execution stage on USDⓈ-M perpetuals (``market_data.exchange =
"binance_usdm"``): what it builds and checks on start.

* Paper trading: :func:`paper_futures` puts the paper broker under a
  :class:`~algostream.execution.futures_paper.FuturesPaperBroker` whose account starts
  with ``risk.starting_equity``, ``risk.leverage`` and ``risk.margin_mode`` on every
  symbol, and continues from its saved state.
* Live (``paper_trading: false``): orders go to ``/fapi/v1/order`` through
  :class:`~algostream.execution.usdm_client.UsdmRestClient` (the spot client's safe-retry
  rules). :func:`reconcile_positions_on_start` sets the leverage at the venue for every
  symbol, rebuilds the positions the ``orders.events`` fills make and compares them with
  ``GET /fapi/v2/positionRisk``: every difference is returned (the venue is the truth),
  and :func:`settle_positions` turns them into adoption events on ``orders.events`` or a
  halt (``risk.position_mismatch``).

>>> from algostream.config import load_settings
>>> is_futures(load_settings(env={"ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm"}))
True
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from algostream.config import Settings
from algostream.execution.errors import ExecutionError
from algostream.execution.futures import (
    FuturesAccount,
    MarginMode,
    PositionDiscrepancy,
    reconcile_positions,
)
from algostream.execution.futures_paper import FuturesPaperBroker
from algostream.execution.paper import PaperBroker
from algostream.execution.usdm_client import UsdmRestClient
from algostream.execution.usdm_stream import AccountUpdate
from algostream.model.enums import OrderStatus, OrderType, RiskEventKind, Side, TradingState
from algostream.model.ids import derive_id
from algostream.model.records import OrderEvent, RiskEvent

VENUE = "BINANCE_USDM"


def is_futures(settings: Settings) -> bool:
    """True when the deployment trades USDⓈ-M perpetuals."""
    return settings.market_data.exchange == "binance_usdm"


def instruments(settings: Settings) -> list[str]:
    return [f"{VENUE}:{s.upper()}" for s in settings.market_data.symbols]


def new_account(settings: Settings) -> FuturesAccount:
    """The configured account: wallet, leverage and margin mode on every symbol."""
    risk = settings.risk
    account = FuturesAccount(wallet=risk.starting_equity)
    for inst in instruments(settings):
        account.position(inst, leverage=risk.leverage, mode=MarginMode(risk.margin_mode))
    return account


def paper_futures(
    broker: PaperBroker, settings: Settings, saved: dict[str, Any] | None
) -> FuturesPaperBroker:
    """The futures paper broker over ``broker`` (see the module docstring)."""
    risk = settings.risk
    futures = FuturesPaperBroker(
        broker,
        new_account(settings),
        min_liquidation_distance=risk.min_liquidation_distance_percent / 100,
        liquidation_fee_rate=risk.liquidation_fee_percent / 100,
        account_id=risk.account,
    )
    if saved is not None:
        futures.load_state(saved)
    return futures


def positions_from_fills(settings: Settings, events: Iterable[OrderEvent]) -> FuturesAccount:
    """The futures positions the fills on ``orders.events`` make (each event once)."""
    account = new_account(settings)
    seen: set[str] = set()
    for ev in events:
        if ev.record_id in seen or not ev.instrument.startswith(VENUE + ":"):
            continue
        seen.add(ev.record_id)
        if ev.fill_qty > 0 and ev.fill_price is not None:
            account.fill(ev.instrument, ev.side, ev.fill_qty, ev.fill_price, ev.fee)
    return account


async def reconcile_positions_on_start(
    client: UsdmRestClient, settings: Settings, events: Iterable[OrderEvent]
) -> list[PositionDiscrepancy]:
    """Leverage set at the venue, then local positions (from fills) against the venue's
    (each difference with the venue's entry and mark price, and ours)."""
    for inst in instruments(settings):
        await client.set_leverage(inst.partition(":")[2], settings.risk.leverage)
    rows = {p.symbol: p for p in await client.position_risk()}
    venue = {s: p.qty for s, p in rows.items() if p.qty or s in _symbols(settings)}
    local = positions_from_fills(settings, events)
    out = []
    for diff in reconcile_positions(local, venue, VENUE):
        row = rows.get(diff.instrument.partition(":")[2])
        mine = local.positions.get(diff.instrument)
        out.append(
            replace(
                diff,
                venue_entry=None if row is None else row.entry_price,
                venue_mark=None if row is None else row.mark_price,
                local_entry=None if mine is None or not mine.qty else mine.entry_price,
            )
        )
    return out


@dataclass(frozen=True)
class PositionSettlement:
    """What start-up does about position differences: the ``orders.events`` records that
    adopt the venue's positions, and why trading halts (None: it does not)."""

    events: list[OrderEvent]
    halt: str | None = None
    refused: tuple[PositionDiscrepancy, ...] = ()


ADOPTED = "POSITION_ADOPTED"
MISMATCH_HALT = "POSITION_MISMATCH"


def settle_positions(
    diffs: Iterable[PositionDiscrepancy], settings: Settings, now_ns: int
) -> PositionSettlement:
    """``risk.position_mismatch``: ``adopt`` makes every venue position ours with one
    FILLED event of the difference (reason ``POSITION_ADOPTED``, client order id
    ``adopt-<SYMBOL>-<ms>``) that the risk gate's ledger applies like any fill: towards
    the venue's side at its entry price, else (a reduce or a close) at its mark. ``halt``
    adopts a difference up to ``risk.position_mismatch_tolerance`` and halts trading when
    one is above it (that one is not adopted: an operator looks first)."""
    risk = settings.risk
    events: list[OrderEvent] = []
    refused: list[PositionDiscrepancy] = []
    for diff in diffs:
        if risk.position_mismatch == "halt" and abs(diff.difference) > (
            risk.position_mismatch_tolerance
        ):
            refused.append(diff)
            continue
        events.append(adoption_event(diff, settings.risk.account, now_ns))
    halt = None
    if refused:
        halt = f"{MISMATCH_HALT}: " + "; ".join(
            f"{d.instrument} ours {d.local} venue {d.venue} (difference {d.difference} "
            f"above risk.position_mismatch_tolerance {risk.position_mismatch_tolerance})"
            for d in refused
        )
    return PositionSettlement(events, halt, tuple(refused))


def halt_record(reason: str | None, account: str, now_ns: int) -> RiskEvent:
    """The ``risk.events`` record of a position reconciliation's verdict: HALTED naming
    the mismatch (``reason``), or ACTIVE (``None``: none found). The risk gate of the
    worker takes it in-process (:meth:`~algostream.risk.processor.RiskProcessor.on_risk_event`):
    a halt refuses every order of the account, naming it, until the operator's RESUME or
    an ACTIVE verdict."""
    halted = reason is not None
    return RiskEvent(
        instrument=f"ACCOUNT:{account.upper()}",
        ts_event=now_ns,
        ts_init=now_ns,
        record_id=derive_id("execution-halt", reason, now_ns),
        lineage_id="reconciliation",
        kind=RiskEventKind.STATE_CHANGED,
        state=TradingState.HALTED if halted else TradingState.ACTIVE,
        previous_state=TradingState.ACTIVE if halted else TradingState.HALTED,
        actor="reconciliation",
        reason=(reason or "positions agree with the venue")[:2000],
        detail={"account": account, "layer": "reconciliation"},
    )


def adoption_event(diff: PositionDiscrepancy, account: str, now_ns: int) -> OrderEvent:
    """The FILLED event that takes our position in ``diff.instrument`` to the venue's."""
    delta = diff.difference
    side = Side.BUY if delta > 0 else Side.SELL
    towards = diff.venue != 0 and (diff.venue > 0) == (delta > 0)
    candidates = (
        (diff.venue_entry, diff.venue_mark, diff.local_entry)
        if towards
        else (diff.venue_mark, diff.venue_entry, diff.local_entry)
    )
    price = next((p for p in candidates if p is not None and p > 0), None)
    if price is None:
        raise ExecutionError(
            f"position reconciliation of {diff.instrument}: no price to adopt the venue's "
            f"position {diff.venue} at (entry, mark and ours unknown)"
        )
    symbol = diff.instrument.partition(":")[2]
    coid = f"adopt-{symbol}-{now_ns // 1_000_000}"[:36]
    reason = (
        f"{ADOPTED}: the venue holds {diff.venue}, the ledger {diff.local} in "
        f"{diff.instrument}; adopted the venue's (the venue is the truth)"
    )
    return OrderEvent(
        instrument=diff.instrument,
        ts_event=now_ns,
        ts_init=now_ns,
        record_id=derive_id("position-adopted", diff.instrument, diff.local, diff.venue, now_ns),
        lineage_id="reconciliation",
        account=account,
        client_order_id=coid,
        status=OrderStatus.FILLED,
        side=side,
        order_type=OrderType.MARKET,
        quantity=abs(delta),
        fill_price=price,
        fill_qty=abs(delta),
        cum_qty=abs(delta),
        reason=reason,
        venue=VENUE,
        strategy=None,
    )


def _symbols(settings: Settings) -> set[str]:
    return {s.upper() for s in settings.market_data.symbols}


@dataclass
class PositionWatch:
    """USD-M live, while running: the ledger's positions (the fills on ``orders.events``,
    from start-up on) against each ``ACCOUNT_UPDATE``'s, by the ``risk.position_mismatch``
    rule (:func:`settle_positions`: adoption events, or a halt).

    The race with the stream's own fills: an instrument with an order in flight (any
    tracked order still open) is not compared, since its fill may be on its way; the
    router applies the ``ORDER_TRADE_UPDATE`` fills of an event before the
    ``ACCOUNT_UPDATE`` that follows it (the stream delivers them in that order)."""

    settings: Settings
    local: dict[str, Decimal] = field(default_factory=dict)
    #: the last fill price by instrument (the price of an adoption the venue's ``ep`` and
    #: the mark do not give: a close to flat)
    last_price: dict[str, Decimal] = field(default_factory=dict)
    #: instruments whose mismatch halts trading (empty: no halt from this watch)
    refused: dict[str, PositionDiscrepancy] = field(default_factory=dict)
    _seen: OrderedDict[str, None] = field(default_factory=OrderedDict)

    @classmethod
    def from_fills(cls, settings: Settings, events: Iterable[OrderEvent]) -> PositionWatch:
        """The watch over the positions the fills on ``orders.events`` make (start-up:
        with the reconciliation's and adoption's own events)."""
        watch = cls(settings)
        watch.apply(events)
        return watch

    def apply(self, events: Iterable[OrderEvent]) -> None:
        """The fills among ``events`` (each record once) move the ledger's positions."""
        for ev in events:
            if ev.record_id in self._seen or not ev.instrument.startswith(VENUE + ":"):
                continue
            self._seen[ev.record_id] = None
            while len(self._seen) > 100_000:
                self._seen.popitem(last=False)
            if ev.fill_qty > 0 and ev.fill_price is not None:
                signed = ev.fill_qty if ev.side is Side.BUY else -ev.fill_qty
                self.local[ev.instrument] = self.local.get(ev.instrument, Decimal(0)) + signed
                self.last_price[ev.instrument] = ev.fill_price

    def on_account_update(
        self, update: AccountUpdate, busy: Collection[str], now_ns: int
    ) -> PositionCheck:
        """Compare ``update``'s one-way positions with ours (not ``busy`` instruments):
        every difference (adopted, or refused: halt), and whether the halt is new or
        lifted (every refused instrument compared since and found equal)."""
        diffs: list[PositionDiscrepancy] = []
        compared: set[str] = set()
        for pos in update.positions:
            inst = f"{VENUE}:{pos.symbol}"
            if pos.position_side != "BOTH" or inst in busy:
                continue
            compared.add(inst)
            ours = self.local.get(inst, Decimal(0))
            if ours != pos.qty:
                diffs.append(
                    PositionDiscrepancy(
                        inst, ours, pos.qty,
                        venue_entry=pos.entry_price if pos.entry_price > 0 else None,
                        local_entry=self.last_price.get(inst),
                    )
                )  # fmt: skip
        done = settle_positions(diffs, self.settings, now_ns)
        self.apply(done.events)
        before = set(self.refused)
        for inst in compared:
            self.refused.pop(inst, None)
        new = [d for d in done.refused if d.instrument not in before]
        self.refused.update({d.instrument: d for d in done.refused})
        lifted = bool(before) and not self.refused
        return PositionCheck(diffs, done, halt=done.halt if new else None, lifted=lifted)


@dataclass(frozen=True)
class PositionCheck:
    """One ``ACCOUNT_UPDATE`` compared: the differences, what was done (adoption events,
    refused ones), ``halt``: the reason of a new halt, ``lifted``: the halt is over."""

    diffs: list[PositionDiscrepancy]
    settlement: PositionSettlement
    halt: str | None = None
    lifted: bool = False
