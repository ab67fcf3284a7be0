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

from collections.abc import Iterable
from dataclasses import dataclass, replace
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


def halt_record(reason: str, account: str, now_ns: int) -> RiskEvent:
    """The ``risk.events`` record of a halt decided at start (a position mismatch)."""
    return RiskEvent(
        instrument=f"ACCOUNT:{account.upper()}",
        ts_event=now_ns,
        ts_init=now_ns,
        record_id=derive_id("execution-halt", reason, now_ns),
        lineage_id="reconciliation",
        kind=RiskEventKind.STATE_CHANGED,
        state=TradingState.HALTED,
        previous_state=TradingState.ACTIVE,
        actor="reconciliation",
        reason=reason[:2000],
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
