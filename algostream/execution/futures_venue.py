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
  ``GET /fapi/v2/positionRisk``: every difference is returned (the venue is the truth)
  for the worker to report.

>>> from algostream.config import load_settings
>>> is_futures(load_settings(env={"ALGOSTREAM__MARKET_DATA__EXCHANGE": "binance_usdm"}))
True
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from algostream.config import Settings
from algostream.execution.futures import (
    FuturesAccount,
    MarginMode,
    PositionDiscrepancy,
    reconcile_positions,
)
from algostream.execution.futures_paper import FuturesPaperBroker
from algostream.execution.paper import PaperBroker
from algostream.execution.usdm_client import UsdmRestClient
from algostream.model.records import OrderEvent

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
    distance = settings.risk.min_liquidation_distance_percent / 100
    futures = FuturesPaperBroker(broker, new_account(settings), min_liquidation_distance=distance)
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
    """Leverage set at the venue, then local positions (from fills) against the venue's."""
    for inst in instruments(settings):
        await client.set_leverage(inst.partition(":")[2], settings.risk.leverage)
    venue: dict[str, Decimal] = {
        s: q for s, q in (await client.positions()).items() if q or s in _symbols(settings)
    }
    return reconcile_positions(positions_from_fills(settings, events), venue, VENUE)


def _symbols(settings: Settings) -> set[str]:
    return {s.upper() for s in settings.market_data.symbols}
