"""``OrderSizer``: a ``Signal`` becomes a MARKET ``OrderRequest`` (``orders.proposed``).

A signal asking for ``units`` (a strategy's ``ctx.buy``/``sell``/``target``, sized by
the signal processor) is that quantity, rounded down to ``step``, and a LIMIT order when
it has a ``limit_price``. Otherwise the quantity is ``SignalConfig.order_quantity *
strength`` rounded *down* to ``step`` (exact
Decimal arithmetic; the float strength enters through its shortest decimal repr). A
quantity that rounds to zero gives no order. The client order id is
``derive_id(signal.record_id)``, so a replayed signal proposes the same order and
downstream de-duplication works.

>>> from decimal import Decimal
>>> from algostream.config import RiskConfig, SignalConfig
>>> sizer = OrderSizer(SignalConfig(order_quantity=Decimal("0.5")), RiskConfig(), step="0.01")
>>> sizer.quantity(0.37)
Decimal('0.18')
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from algostream.config import RiskConfig, SignalConfig
from algostream.model.enums import OrderType
from algostream.model.ids import derive_id
from algostream.model.records import OrderRequest, Signal
from algostream.model.values import to_decimal
from algostream.signals.errors import SignalError


class OrderSizer:
    """Turns signals into order proposals for one account."""

    def __init__(
        self,
        signal_config: SignalConfig,
        risk_config: RiskConfig,
        *,
        step: Decimal | str = Decimal("0.00001"),
    ) -> None:
        self.base_quantity = signal_config.order_quantity
        self.account = risk_config.account
        self.step = to_decimal(step)
        if self.step <= 0:
            raise SignalError(f"step must be > 0, got {self.step}")

    def quantity(self, strength: float) -> Decimal:
        """``base_quantity * strength`` rounded down to a multiple of ``step``."""
        if not 0.0 <= strength <= 1.0:
            raise SignalError(f"strength must be in [0, 1], got {strength!r}")
        raw = self.base_quantity * Decimal(repr(strength))
        steps = (raw / self.step).to_integral_value(rounding=ROUND_DOWN)
        return (steps * self.step).normalize() if steps else Decimal(0)

    def to_order(self, signal: Signal, ts_init: int | None = None) -> OrderRequest | None:
        """The order for ``signal`` (MARKET; LIMIT with a limit price; STOP_MARKET /
        STOP_LIMIT with a stop price, sized in units), or ``None`` if the size rounds to
        zero."""
        order_type = OrderType.MARKET
        if signal.sizing == "strength":
            quantity = self.quantity(signal.strength)
        elif signal.sizing == "units" and signal.size is not None:
            steps = (abs(signal.size) / self.step).to_integral_value(rounding=ROUND_DOWN)
            quantity = (steps * self.step).normalize() if steps else Decimal(0)
            if signal.order_list == "OCO":  # two exits: a LIMIT at take_profit + a stop
                order_type = OrderType.LIMIT
            elif signal.stop_price is not None:  # a buy stop on a rise, a sell stop on a fall
                limited = signal.limit_price is not None
                order_type = OrderType.STOP_LIMIT if limited else OrderType.STOP_MARKET
            elif signal.limit_price is not None:
                order_type = OrderType.LIMIT
        else:
            raise SignalError(
                f"signal {signal.record_id}: sizing={signal.sizing!r} size={signal.size} "
                f"stop_price={signal.stop_price} is sized by the bar backtest, not here"
            )
        if quantity <= 0:
            return None
        if signal.order_list == "OCO" and signal.limit_price != signal.take_profit:
            raise SignalError(
                f"signal {signal.record_id}: an OCO's limit_price={signal.limit_price} must "
                f"be its take_profit={signal.take_profit}"
            )
        return OrderRequest(
            instrument=signal.instrument,
            ts_event=signal.ts_event,
            ts_init=signal.ts_init if ts_init is None else ts_init,
            record_id=derive_id("order", signal.record_id),
            lineage_id=signal.record_id,
            account=self.account,
            client_order_id=derive_id(signal.record_id),
            strategy=signal.strategy,
            side=signal.side,
            order_type=order_type,
            quantity=quantity,
            limit_price=signal.limit_price if order_type.has_limit_price else None,
            stop_price=signal.stop_price if order_type.is_conditional else None,
            arrival_mid=signal.price,
            order_list=signal.order_list,
            take_profit=signal.take_profit,
            stop_loss=signal.stop_loss,
            reduce_only=signal.order_list == "OCO",
        )
