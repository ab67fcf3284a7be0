"""The trading worker's futures parts, kept out of the risk and execution shells:

* every ``Position`` the risk gate writes sets ``algostream_position_notional{venue,
  side}`` and, for ``BINANCE_USDM:*``, ``algostream_margin_used`` (notional at the mark /
  ``risk.leverage``);
* with ``market_data.exchange = "binance_usdm"`` both stages take ``md.mark_price`` (the
  worker's tap reads it once for both): the gate settles funding into the ledger
  (``Position``/``PnL`` records, ``algostream_funding_paid``), the paper broker into its
  futures account, and the paper account liquidates a position the mark moves through
  (its events on ``orders.events``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from algostream.config import Settings
from algostream.execution.futures_venue import is_futures
from algostream.model.ids import split_instrument
from algostream.model.records import MarkPrice, OrderEvent, Position, Record, RiskEvent
from algostream.observability import metrics
from algostream.risk.futures import FUTURES_VENUE
from streams import fencing
from streams.edge import Edge
from streams.stage import Input, Read

if TYPE_CHECKING:
    from streams.execution import ExecutionShell
    from streams.risk import RiskShell

Emit = Callable[[list[Record]], Awaitable[None]]


def observe_position(record: Position, leverage: int) -> None:
    """Position gauges by venue and side, and futures margin in use."""
    if record.strategy is not None:
        return  # one strategy's part: the account's net position is what the venue holds
    venue = split_instrument(record.instrument)[0]
    mark = record.mark_price if record.mark_price is not None else record.avg_price
    notional = abs(record.quantity) * mark
    side = "LONG" if record.quantity > 0 else "SHORT"
    other = "SHORT" if side == "LONG" else "LONG"
    labels = {"account": record.account, "venue": venue, "instrument": record.instrument}
    metrics.POSITION_NOTIONAL.labels(side=side, **labels).set(float(notional))
    metrics.POSITION_NOTIONAL.labels(side=other, **labels).set(0.0)
    if venue == FUTURES_VENUE:
        metrics.MARGIN_USED.labels(account=record.account, instrument=record.instrument).set(
            float(notional / leverage)
        )


def risk_inputs(
    edge: Edge, settings: Settings, shell: RiskShell, emit: Emit
) -> dict[str, Input[Any]]:
    """The gate's futures inputs: mark prices settle funding (none for spot)."""
    if not is_futures(settings):
        return {}

    async def reconciliation(record: RiskEvent) -> None:
        """The execution stage's position verdict (in-process): halt or lift."""
        if edge.owns("orders.proposed") and await fencing.may_handle(edge):
            out = shell.proc.on_risk_event(record, time.time_ns())
            if out:
                await emit(out)
            shell.persist()

    async def on_mark(mark: MarkPrice) -> None:
        if not edge.owns("orders.proposed") or not await fencing.may_handle(edge):
            return  # a standby keeps no state (RiskShell.forget)
        out = shell.proc.on_mark_price(mark, time.time_ns())
        if out:
            await emit(out)
            shell.persist()
        for paid in shell.proc.take_fundings():
            pos = shell.proc.ledger(paid.account).positions[paid.instrument]
            metrics.FUNDING_PAID.labels(account=paid.account, instrument=paid.instrument).set(
                float(-pos.funding)
            )

    return {
        "md.mark_price": Input(MarkPrice, on_mark, read=Read.TAP),
        # from this worker's execution stage only, never read back (the gate writes
        # risk.events itself)
        "risk.events": Input(RiskEvent, reconciliation, read=None),
    }


def execution_inputs(
    edge: Edge,
    settings: Settings,
    shell: ExecutionShell,
    emit: Callable[[list[OrderEvent]], Awaitable[None]],
) -> dict[str, Input[Any]]:
    """The paper broker's futures inputs (live: the venue settles funding)."""
    if not is_futures(settings) or not settings.execution.paper_trading:
        return {}

    async def on_mark(mark: MarkPrice) -> None:
        if not edge.owns("orders.approved") or not await fencing.may_handle(edge):
            return  # not the owner (or fenced): the owner's broker settles it
        async with shell.order_lock:
            paid = shell.router.on_mark_price(mark)
            liquidated = shell.router.take_liquidations()
            if liquidated:
                await emit(liquidated)  # persists
            elif paid:
                shell.persist()

    return {"md.mark_price": Input(MarkPrice, on_mark, read=Read.TAP)}
