"""Example agent: volume spikes. ``md.trades`` -> ``alerts.volume``.

The agent README's "Adding your own agent" builds, step by step. Each instrument's traded
volume is summed over event-time windows of ``WINDOW_NS``; when a window closes (the first
trade of a later window arrives) its volume is compared with the exponential average of
the windows before it, and a :class:`VolumeSpike` is published when it is ``THRESHOLD``
times that average or more (after ``WARMUP`` windows). Windows with no trades count as
zero volume.

A stage (:mod:`streams.stage`): its state per instrument is a
:class:`~streams.state.StageState` (``volume-spikes-state``), so a restarted or rebalanced
worker continues where the last owner stopped; a trade re-delivered after a restart
(at-least-once) is recognised by its time and id and not counted twice. A record that
does not decode as a trade goes to ``dlq`` with its reason and the stage goes on.

Run it: ``ALGOSTREAM__WORKERS__AGENTS='{"alerts": ["streams.volume_spikes"]}'`` then
``algostream worker alerts`` (the demo starts it too): a worker of its own reads
``md.trades``. Named in the ``market`` role instead, it takes the trades the bar stage
reads, in-process.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

import faust

from algostream.config import Settings
from algostream.model.records import TradeTick, VolumeSpike
from streams.edge import Edge
from streams.stage import Input, Stage
from streams.state import StageState

AGENT = "volume-spikes"
WINDOW_NS = 1_000_000_000  #: one second
ALPHA = Decimal("0.2")  #: weight of the newest window in the average
THRESHOLD = Decimal(5)  #: a spike: volume >= THRESHOLD x the average
WARMUP = 5  #: windows seen before any alert


@dataclass
class Window:
    """One instrument's open window and the average of the windows before it."""

    start_ns: int
    volume: Decimal = Decimal(0)
    trades: int = 0
    average: Decimal = Decimal(0)
    closed: int = 0  #: windows closed so far
    last_ts: int = 0  #: event time of the newest trade counted
    last_ids: list[str] = field(default_factory=list)  #: trade ids counted at ``last_ts``

    def to_state(self) -> dict[str, Any]:
        return {k: str(v) if isinstance(v, Decimal) else v for k, v in asdict(self).items()}

    @classmethod
    def from_state(cls, saved: dict[str, Any]) -> Window:
        return cls(
            start_ns=int(saved["start_ns"]),
            volume=Decimal(saved["volume"]),
            trades=int(saved["trades"]),
            average=Decimal(saved["average"]),
            closed=int(saved["closed"]),
            last_ts=int(saved["last_ts"]),
            last_ids=list(saved["last_ids"]),
        )


def on_trade(window: Window | None, tick: TradeTick) -> tuple[Window, list[VolumeSpike]]:
    """Count ``tick`` in its instrument's window (pure: no Kafka, no table); returns the
    window and the spikes of the windows it closed."""
    start = tick.ts_event - tick.ts_event % WINDOW_NS
    if window is None:
        window = Window(start_ns=start)
    seen = tick.ts_event < window.last_ts or (
        tick.ts_event == window.last_ts and tick.trade_id in window.last_ids
    )
    if seen or start < window.start_ns:  # re-delivered, or late for a closed window
        return window, []
    spikes = []
    if window.start_ns < start:  # the trade closes the open window
        ratio = window.volume / window.average if window.average else None
        if window.closed >= WARMUP and ratio is not None and ratio >= THRESHOLD:
            spikes.append(spike(tick, window, ratio))
        empty = (start - window.start_ns) // WINDOW_NS - 1  # windows with no trades between
        window.average = (ALPHA * window.volume + (1 - ALPHA) * window.average) * (
            1 - ALPHA
        ) ** empty
        window.closed += 1 + empty
        window.start_ns, window.volume, window.trades = start, Decimal(0), 0
    window.volume += tick.size
    window.trades += 1
    if tick.ts_event != window.last_ts:
        window.last_ts, window.last_ids = tick.ts_event, []
    window.last_ids.append(tick.trade_id)
    return window, spikes


def spike(tick: TradeTick, window: Window, ratio: Decimal) -> VolumeSpike:
    return VolumeSpike(
        instrument=tick.instrument,
        ts_event=window.start_ns + WINDOW_NS,
        ts_init=tick.ts_init,
        record_id=f"vs-{tick.instrument}-{window.start_ns}",
        lineage_id=tick.record_id,
        window_start_ns=window.start_ns,
        window_ns=WINDOW_NS,
        volume=window.volume,
        average=window.average,
        ratio=ratio.quantize(Decimal("0.0001")),
        trades=window.trades,
    )


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    """Called once by the worker that runs this module (``workers.agents``)."""
    state = StageState.add(app, edge, "volume-spikes-state", "md.trades")

    async def volume_spikes(tick: TradeTick) -> None:
        saved = state.get(tick.instrument)  # restored on restart / rebalance
        window = Window.from_state(saved) if saved is not None else None
        window, spikes = on_trade(window, tick)  # the pure logic
        for found in spikes:
            await edge.publish("alerts.volume", found)  # keyed by instrument
        await state.save(tick.instrument, window.to_state())

    return [
        Stage(
            AGENT,
            inputs={"md.trades": Input(TradeTick, volume_spikes)},  # bad records: dlq
            outputs=("alerts.volume",),
            state=state,
        )
    ]
