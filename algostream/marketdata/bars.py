"""OHLCV bars in *event* time from trades (``md.trades`` → ``bars.<interval>``, 1s to 1d).

A trade belongs to the bucket ``[floor(ts_event / interval) * interval, + interval)``. A
bar is emitted when it closes: when a trade of a later bucket of the same instrument
arrives, or when the watermark passed to :meth:`BarAggregator.on_time` reaches its end.
**Buckets without trades produce no bar** (no flat-filled bars). A trade for a bucket that
is already closed (or older than the open one) is *late*: it is returned in
:attr:`BarResult.late`, never silently dropped, and the bars are not changed.

Volume, quote volume (sum of ``price * size``) and trade count are exact: arithmetic runs
in a decimal context that raises instead of rounding.

>>> from algostream.model import Side, TradeTick
>>> agg = BarAggregator("1s")
>>> def tick(n, ts, price):
...     return TradeTick(instrument="BINANCE:BTCUSDT", ts_event=ts, ts_init=ts,
...                      record_id=f"t{n}", lineage_id="r", trade_id=str(n), price=price,
...                      size="2", aggressor_side=Side.BUY)
>>> agg.on_trade(tick(1, 1_000_000_000, "10")).bars
[]
>>> bar = agg.on_trade(tick(2, 2_500_000_000, "11")).bars[0]
>>> bar.open, bar.close, bar.volume, bar.quote_volume, bar.start_ns
(Decimal('10'), Decimal('10'), Decimal('2'), Decimal('20'), 1000000000)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Context, Decimal, Inexact, InvalidOperation, Overflow, Rounded
from typing import Any

from algostream.marketdata.errors import BookStateError
from algostream.marketdata.frames import build
from algostream.model.ids import derive_id
from algostream.model.records import Bar, BarInterval, TradeTick

Interval = BarInterval
_S = 1_000_000_000
#: every interval's length; buckets are aligned to the Unix epoch (a 1d bar is a UTC day,
#: as Binance's klines)
INTERVAL_NS: dict[str, int] = {
    name: n * unit
    for unit, names in (
        (_S, ("1s", "5s", "15s", "30s")),
        (60 * _S, ("1m", "3m", "5m", "15m", "30m")),
        (3600 * _S, ("1h", "2h", "4h", "6h", "12h")),
        (86400 * _S, ("1d",)),
    )
    for name in names
    for n in (int(name[:-1]),)
}
_EXACT = Context(prec=80, traps=[Inexact, Rounded, InvalidOperation, Overflow])
_DECIMALS = ("open", "high", "low", "close", "volume", "quote_volume")


@dataclass
class _OpenBar:
    start_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int
    last_id: str
    last_ts_init: int


@dataclass
class BarResult:
    """Bars closed by a trade, and the trades that arrived too late for their bar."""

    bars: list[Bar] = field(default_factory=list)
    late: list[TradeTick] = field(default_factory=list)


class BarAggregator:
    """Event-time OHLCV bars of one interval, for any number of instruments."""

    def __init__(self, interval: Interval) -> None:
        if interval not in INTERVAL_NS:
            raise ValueError(f"interval={interval!r}: expected one of {sorted(INTERVAL_NS)}")
        self.interval: Interval = interval
        self.interval_ns = INTERVAL_NS[interval]
        self.watermark_ns = 0
        self._open: dict[str, _OpenBar] = {}
        self._closed_until: dict[str, int] = {}

    def on_trade(self, tick: TradeTick) -> BarResult:
        """Add a trade; returns the bar it closed (if any) or the trade itself as late."""
        result = BarResult()
        bar = self.add(tick, result.late)
        if bar is not None:
            result.bars.append(bar)
        return result

    def add(self, tick: TradeTick, late: list[TradeTick] | None = None) -> Bar | None:
        """:meth:`on_trade` without its result object (the backtest engine, per trade):
        the bar the trade closed, if any; a late trade is appended to ``late``."""
        interval = self.interval_ns
        ts = tick.ts_event
        start = ts - ts % interval
        inst = tick.instrument
        bar = self._open.get(inst)
        watermark = self.watermark_ns
        floor = max(watermark - watermark % interval, self._closed_until.get(inst, 0))
        if start < floor or (bar is not None and start < bar.start_ns):
            if late is not None:
                late.append(tick)
            return None
        price = tick.price
        notional = _EXACT.multiply(price, tick.size)
        if bar is not None and start == bar.start_ns:
            if price > bar.high:  # (max/min: the first of equal values is kept)
                bar.high = price
            if price < bar.low:
                bar.low = price
            bar.close = price
            bar.volume = _EXACT.add(bar.volume, tick.size)
            bar.quote_volume = _EXACT.add(bar.quote_volume, notional)
            bar.trades += 1
            bar.last_id, bar.last_ts_init = tick.record_id, tick.ts_init
            return None
        closed = None if bar is None else self._close(inst, bar, tick.ts_init)
        self._open[inst] = _OpenBar(
            start, price, price, price, price, tick.size, notional, 1, tick.record_id, tick.ts_init
        )
        return closed

    def on_time(self, now_ns: int) -> list[Bar]:
        """Advance the watermark (event time): close every open bar ending at or before it."""
        self.watermark_ns = max(self.watermark_ns, now_ns)
        out: list[Bar] = []
        for inst, bar in list(self._open.items()):
            if bar.start_ns + self.interval_ns <= self.watermark_ns:
                out.append(self._close(inst, bar, now_ns))
        return out

    def open_bar(self, instrument: str) -> Bar | None:
        """The bar being built for ``instrument`` (not closed, not emitted), or ``None``."""
        bar = self._open.get(instrument)
        return None if bar is None else self._to_bar(instrument, bar, bar.last_ts_init)

    def _close(self, inst: str, bar: _OpenBar, ts_init: int) -> Bar:
        del self._open[inst]
        self._closed_until[inst] = bar.start_ns + self.interval_ns
        return self._to_bar(inst, bar, ts_init)

    def _to_bar(self, inst: str, bar: _OpenBar, ts_init: int) -> Bar:
        end = bar.start_ns + self.interval_ns
        return build(
            Bar,
            instrument=inst,
            ts_event=end,
            ts_init=ts_init,
            record_id=derive_id("bar", inst, self.interval, bar.start_ns),
            lineage_id=bar.last_id,
            interval=self.interval,
            start_ns=bar.start_ns,
            end_ns=end,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            quote_volume=bar.quote_volume,
            trades=bar.trades,
        )

    # ------------------------------------------------------------------ state
    def to_state(self) -> dict[str, Any]:
        """JSON-able state (decimal strings) for a Faust table."""
        return {
            "interval": self.interval,
            "watermark_ns": self.watermark_ns,
            "closed_until": dict(self._closed_until),
            "open": {
                inst: {
                    "start_ns": b.start_ns,
                    "trades": b.trades,
                    "last_id": b.last_id,
                    "last_ts_init": b.last_ts_init,
                    **{k: str(getattr(b, k)) for k in _DECIMALS},
                }
                for inst, b in self._open.items()
            },
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> BarAggregator:
        """Rebuild from :meth:`to_state` output; :class:`BookStateError` names a bad key."""
        try:
            agg = cls(state["interval"])
            agg.watermark_ns = _int(state["watermark_ns"], "watermark_ns")
            agg._closed_until = {
                str(k): _int(v, f"closed_until.{k}") for k, v in state["closed_until"].items()
            }
            for inst, b in state["open"].items():
                values = {k: _decimal(b[k], f"open.{inst}.{k}") for k in _DECIMALS}
                agg._open[str(inst)] = _OpenBar(
                    start_ns=_int(b["start_ns"], f"open.{inst}.start_ns"),
                    trades=_int(b["trades"], f"open.{inst}.trades"),
                    last_id=str(b["last_id"]),
                    last_ts_init=_int(b["last_ts_init"], f"open.{inst}.last_ts_init"),
                    **values,
                )
        except KeyError as exc:
            raise BookStateError(f"bar state: key {exc} is missing") from None
        except (AttributeError, TypeError, ValueError) as exc:
            raise BookStateError(f"bar state is malformed: {exc}") from None
        return agg


def _int(value: Any, key: str) -> int:
    if type(value) is not int or value < 0:
        raise BookStateError(f"bar state '{key}' = {value!r}: expected a non-negative integer")
    return value


def _decimal(value: Any, key: str) -> Decimal:
    try:
        result = Decimal(value) if type(value) is str else None
    except InvalidOperation:
        result = None
    if result is None or not result.is_finite() or result < 0:
        raise BookStateError(f"bar state '{key}' = {value!r}: expected a decimal string")
    return result
