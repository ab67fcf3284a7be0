"""Static and trailing stops per position, evaluated on every book update.

Which price: a stop is evaluated at the price the position would exit at, i.e. the
**best bid for a long** and the **best ask for a short** (the mid when that side of the book
is empty). The trailing reference is the best such exit price since the episode started
(high-water mark for a long, low-water mark for a short), seeded with the opening fill
price. Using the exit touch rather than the mid makes a wide spread trigger a stop a
little earlier, never later, which is the conservative side.

* static stop: long exits when ``bid <= avg_price x (1 - stop_loss_percent/100)``,
  short when ``ask >= avg_price x (1 + stop_loss_percent/100)``;
* trailing stop: long exits when ``bid <= high x (1 - trailing_stop_percent/100)``,
  short when ``ask >= low x (1 + trailing_stop_percent/100)``.

A percentage <= 0 disables that stop. A *position episode* runs from the fill that opens a
position (or flips it) until it is flat again. A stop fires at most once per episode while
its close is pending; if the close is refused by risk or ends at the venue without
flattening (cancelled, rejected, expired) the stop re-arms, at most ``max_attempts`` times
per episode, and a re-fire gets a new deterministic ``client_order_id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from algostream.model.enums import OrderType, RiskEventKind, Side, TradingState
from algostream.model.ids import derive_id
from algostream.model.records import BookTop, OrderRequest, RiskEvent
from algostream.risk.errors import StateRestoreError

_HUNDRED = Decimal(100)
#: no stop is on (both percentages <= 0): never reached
_NEVER = Decimal("NaN")
#: the trip price a tracker keeps when no stop is on (compared by identity, never by value)
NEVER_TRIPS = _NEVER
STOP_STRATEGY = "risk-stop"
STOP_ACTOR = "risk.stops"


class StopKind(StrEnum):
    """Which stop fired."""

    STOP_LOSS = "STOP_LOSS"
    TRAILING_STOP = "TRAILING_STOP"


@dataclass(slots=True)
class StopTracker:
    """Stop state of one position episode."""

    episode_id: str
    direction: int
    best_price: Decimal
    fired: bool = False
    attempts: int = 0
    client_order_id: str | None = None
    #: the exit price at or past which a stop fires, for ``trip_avg`` and ``best_price``
    #: (None: not worked out since either moved); kept so a top costs a comparison
    trip: Decimal | None = None
    trip_avg: Decimal | None = None


@dataclass(frozen=True, slots=True)
class StopHit:
    """A stop that fired: close ``position`` with ``client_order_id``."""

    account: str
    instrument: str
    kind: StopKind
    trigger_price: Decimal
    stop_price: Decimal
    position: Decimal
    avg_price: Decimal
    best_price: Decimal
    client_order_id: str
    episode_id: str
    attempt: int


def exit_price(direction: int, top: BookTop) -> Decimal | None:
    """Best bid for a long (direction 1), best ask for a short; mid if that side is empty."""
    touch = top.best_bid if direction > 0 else top.best_ask
    return touch if touch is not None else top.mid


def closing_order(
    *,
    account: str,
    instrument: str,
    position: Decimal,
    client_order_id: str,
    strategy: str,
    cause_id: str,
    ts_event: int,
    ts_init: int,
    arrival_mid: Decimal | None,
) -> OrderRequest:
    """A reduce-only MARKET proposal that closes ``position`` (signed, non-zero)."""
    return OrderRequest(
        instrument=instrument,
        ts_event=ts_event,
        ts_init=ts_init,
        record_id=derive_id("proposal", client_order_id),
        lineage_id=cause_id,
        account=account,
        client_order_id=client_order_id,
        strategy=strategy,
        side=Side.SELL if position > 0 else Side.BUY,
        order_type=OrderType.MARKET,
        quantity=abs(position),
        reduce_only=True,
        arrival_mid=arrival_mid,
    )


class StopManager:
    """Tracks one :class:`StopTracker` per (account, instrument) with an open position.

    >>> from decimal import Decimal as D
    >>> m = StopManager(D("2"), D("0"))
    >>> m.on_position("paper", "BINANCE:BTCUSDT", D(0), D(1), D(100), "fill-1")
    >>> m.tracker("paper", "BINANCE:BTCUSDT").best_price
    Decimal('100')
    """

    def __init__(
        self, stop_loss_percent: Decimal, trailing_stop_percent: Decimal, max_attempts: int = 3
    ) -> None:
        self.stop_loss_percent = stop_loss_percent
        self.trailing_stop_percent = trailing_stop_percent
        self.max_attempts = max_attempts
        self._trackers: dict[tuple[str, str], StopTracker] = {}
        self._by_order: dict[str, tuple[str, str]] = {}
        #: counts the changes of any tracker (started, ended, fired, re-armed, its trailing
        #: reference or trip price moved): what was found of a tracker holds while this
        #: count is the same (the risk processor's memo of a quiet top)
        self.changes = 0

    def tracker(self, account: str, instrument: str) -> StopTracker | None:
        """The live tracker of a position, if it is open."""
        return self._trackers.get((account, instrument))

    def is_stop_order(self, client_order_id: str) -> bool:
        """True when ``client_order_id`` is a close this manager emitted and still tracks."""
        return client_order_id in self._by_order

    def on_position(
        self,
        account: str,
        instrument: str,
        previous: Decimal,
        quantity: Decimal,
        fill_price: Decimal,
        cause_id: str,
    ) -> None:
        """Start, keep or end the episode after a fill moved the position."""
        key = (account, instrument)
        if quantity == 0:
            self._drop(key)
        elif previous == 0 or previous * quantity < 0 or key not in self._trackers:
            self._drop(key)
            self._trackers[key] = StopTracker(cause_id, 1 if quantity > 0 else -1, fill_price)
            self.changes += 1

    def _drop(self, key: tuple[str, str]) -> None:
        tracker = self._trackers.pop(key, None)
        if tracker is not None:
            self.changes += 1
            if tracker.client_order_id is not None:
                self._by_order.pop(tracker.client_order_id, None)

    def on_close_failed(self, client_order_id: str) -> None:
        """A stop's close was refused or ended unfilled: re-arm unless attempts ran out."""
        key = self._by_order.pop(client_order_id, None)
        tracker = self._trackers.get(key) if key is not None else None
        if tracker is not None and tracker.attempts < self.max_attempts:
            tracker.fired = False
            tracker.client_order_id = None
            self.changes += 1

    def evaluate(
        self, account: str, instrument: str, position: Decimal, avg_price: Decimal, top: BookTop
    ) -> StopHit | None:
        """Update the trailing reference with ``top`` and return a hit, if any."""
        tracker = self._trackers.get((account, instrument))
        if tracker is None or tracker.fired or position == 0:
            return None
        direction = tracker.direction
        price = top.best_bid if direction > 0 else top.best_ask  # exit_price(), inlined
        if price is None:
            price = top.mid
            if price is None:
                return None
        best = tracker.best_price
        if price > best if direction > 0 else price < best:
            tracker.best_price = best = price
            tracker.trip = None
        trip = tracker.trip
        if trip is None or tracker.trip_avg is not avg_price:
            # (an average price of the same value, another object after a fill: the same
            # trip price, kept for this one, as the risk processor's quiet check reads it)
            trip = tracker.trip = self._trip(direction, avg_price, best)
            tracker.trip_avg = avg_price
            self.changes += 1
        if trip is _NEVER or (price > trip if direction > 0 else price < trip):
            return None  # (most tops: nowhere near a stop)
        found = self._triggered(direction, price, avg_price, best)
        if found is None:
            return None
        kind, stop_price = found
        tracker.fired = True
        tracker.attempts += 1
        self.changes += 1
        coid = "stop-" + derive_id(account, instrument, tracker.episode_id, tracker.attempts)
        tracker.client_order_id = coid
        self._by_order[coid] = (account, instrument)
        return StopHit(
            account,
            instrument,
            kind,
            price,
            stop_price,
            position,
            avg_price,
            tracker.best_price,
            coid,
            tracker.episode_id,
            tracker.attempts,
        )

    def _trip(self, direction: int, avg_price: Decimal, best: Decimal) -> Decimal:
        """The exit price at or past which :meth:`_triggered` finds a stop: ``price x 100``
        reaches ``level`` exactly when ``price`` reaches ``level / 100`` (a shift of the
        exponent, exact), the nearest level of the two stops (``_NEVER``: none is on)."""
        levels = [
            (ref * (_HUNDRED - direction * percent)).scaleb(-2)
            for percent, ref in (
                (self.stop_loss_percent, avg_price),
                (self.trailing_stop_percent, best),
            )
            if percent > 0 and ref > 0
        ]
        if not levels:
            return _NEVER
        return max(levels) if direction > 0 else min(levels)

    def _triggered(
        self, direction: int, price: Decimal, avg_price: Decimal, best: Decimal
    ) -> tuple[StopKind, Decimal] | None:
        for kind, percent, ref in (
            (StopKind.STOP_LOSS, self.stop_loss_percent, avg_price),
            (StopKind.TRAILING_STOP, self.trailing_stop_percent, best),
        ):
            if percent <= 0 or ref <= 0:
                continue
            # price x 100 vs ref x (100 -/+ pct): no division needed to decide
            level = ref * (_HUNDRED - direction * percent)
            if (price * _HUNDRED - level) * direction <= 0:
                return kind, level / _HUNDRED
        return None

    def to_state(self) -> list[dict[str, Any]]:
        """JSON-able snapshot."""
        return [
            {
                "account": acc,
                "instrument": inst,
                "episode_id": t.episode_id,
                "direction": t.direction,
                "best_price": str(t.best_price),
                "fired": t.fired,
                "attempts": t.attempts,
                "client_order_id": t.client_order_id,
            }
            for (acc, inst), t in self._trackers.items()
        ]

    def restore(self, state: list[dict[str, Any]]) -> None:
        """Replace the trackers with :meth:`to_state` output."""
        self.changes += 1
        self._trackers.clear()
        self._by_order.clear()
        for item in state:
            try:
                key = (str(item["account"]), str(item["instrument"]))
                tracker = StopTracker(
                    str(item["episode_id"]),
                    int(item["direction"]),
                    Decimal(str(item["best_price"])),
                    bool(item["fired"]),
                    int(item["attempts"]),
                    item["client_order_id"],
                )
            except (KeyError, ValueError, ArithmeticError) as exc:
                raise StateRestoreError(f"stop tracker state {item!r}: {exc!r}") from None
            self._trackers[key] = tracker
            if tracker.client_order_id is not None:
                self._by_order[tracker.client_order_id] = key


def stop_proposal(hit: StopHit, top: BookTop, now_ns: int) -> OrderRequest:
    """The closing proposal of a stop hit (reduce-only MARKET, lineage = the book top)."""
    return closing_order(
        account=hit.account,
        instrument=hit.instrument,
        position=hit.position,
        client_order_id=hit.client_order_id,
        strategy=STOP_STRATEGY,
        cause_id=top.record_id,
        ts_event=top.ts_event,
        ts_init=now_ns,
        arrival_mid=top.mid,
    )


def stop_event(hit: StopHit, state: TradingState, top: BookTop, now_ns: int) -> RiskEvent:
    """The ``STOP_HIT`` risk event of a stop hit."""
    return RiskEvent(
        instrument=hit.instrument,
        ts_event=top.ts_event,
        ts_init=now_ns,
        record_id=derive_id("stop-hit", hit.client_order_id),
        lineage_id=top.record_id,
        kind=RiskEventKind.STOP_HIT,
        state=state,
        actor=STOP_ACTOR,
        reason=hit.kind.value,
        detail={
            "account": hit.account,
            "trigger_price": str(hit.trigger_price),
            "stop_price": str(hit.stop_price),
            "position": str(hit.position),
            "avg_price": str(hit.avg_price),
            "best_price": str(hit.best_price),
            "client_order_id": hit.client_order_id,
            "episode_id": hit.episode_id,
            "attempt": str(hit.attempt),
        },
    )
