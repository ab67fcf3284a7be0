"""Per-symbol instrument specs and the exact integer <-> decimal-string conversions.

The simulator keeps prices as integer ticks and quantities as integer lots, so book
arithmetic is exact and fast; strings are produced only at the wire edge.

>>> spec = default_spec("BTCUSDT")
>>> spec.tick_size, spec.base_asset, spec.quote_asset, spec.coinbase_product
(Decimal('0.01'), 'BTC', 'USDT', 'BTC-USDT')
>>> fmt_units(spec.price_units(3_000_001), 8)
'30000.01000000'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from algostream.sim.errors import SimConfigError

#: Binance prints prices and quantities with 8 decimals.
WIRE_DECIMALS = 8
_SCALE = 10**WIRE_DECIMALS
_QUOTES = ("USDT", "BUSD", "USDC", "FDUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB")
_DEFAULTS: dict[str, tuple[str, str, str, str]] = {
    # symbol: (start price, tick size, step size, mean level quantity)
    "BTCUSDT": ("30000", "0.01", "0.00001", "0.5"),
    "ETHUSDT": ("2000", "0.01", "0.0001", "5"),
    "SOLUSDT": ("150", "0.01", "0.001", "50"),
}


def fmt_units(units: int, decimals: int) -> str:
    """Format an integer count of ``10**-decimals`` as a fixed-point string."""
    scale = 10**decimals
    whole, frac = divmod(units, scale)
    return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _units(value: Decimal, name: str, symbol: str) -> int:
    scaled = value * _SCALE
    if value <= 0 or scaled != scaled.to_integral_value():
        raise SimConfigError(
            f"{symbol}: {name}={value} must be > 0 with at most {WIRE_DECIMALS} decimals"
        )
    return int(scaled)


@dataclass(frozen=True)
class SymbolSpec:
    """One simulated instrument: filters (tick/lot/notional) and market-shape knobs."""

    symbol: str
    start_price: Decimal
    tick_size: Decimal
    step_size: Decimal
    mean_level_qty: Decimal
    base_asset: str
    quote_asset: str
    min_notional: Decimal = Decimal("5")
    coinbase_product: str = ""
    tick_units: int = field(init=False, repr=False)
    step_units: int = field(init=False, repr=False)
    price_decimals: int = field(init=False, repr=False)
    qty_decimals: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.symbol.isalnum() or self.symbol.upper() != self.symbol:
            raise SimConfigError(f"symbol={self.symbol!r} must be upper-case alphanumeric")
        object.__setattr__(self, "tick_units", _units(self.tick_size, "tick_size", self.symbol))
        object.__setattr__(self, "step_units", _units(self.step_size, "step_size", self.symbol))
        object.__setattr__(self, "price_decimals", _decimals(self.tick_size))
        object.__setattr__(self, "qty_decimals", _decimals(self.step_size))
        _units(self.start_price, "start_price", self.symbol)
        if self.start_price < self.tick_size * 200:
            raise SimConfigError(
                f"{self.symbol}: start_price={self.start_price} must be >= 200 ticks "
                f"(tick_size={self.tick_size}) so the book has room"
            )
        if self.mean_level_qty < self.step_size:
            raise SimConfigError(
                f"{self.symbol}: mean_level_qty={self.mean_level_qty} < step_size={self.step_size}"
            )
        if not self.coinbase_product:
            product = f"{self.base_asset}-{self.quote_asset}"
            object.__setattr__(self, "coinbase_product", product)

    @property
    def start_ticks(self) -> int:
        """The start price in ticks."""
        return int(self.start_price / self.tick_size)

    @property
    def mean_lots(self) -> int:
        """The mean resting quantity of a level, in lots."""
        return max(1, int(self.mean_level_qty / self.step_size))

    def price_units(self, ticks: int) -> int:
        """A price in ticks as a count of ``1e-8``."""
        return ticks * self.tick_units

    def price_str(self, ticks: int) -> str:
        """A price in ticks as Binance prints it (8 decimals)."""
        return fmt_units(ticks * self.tick_units, WIRE_DECIMALS)

    def qty_str(self, lots: int) -> str:
        """A quantity in lots as Binance prints it (8 decimals)."""
        return fmt_units(lots * self.step_units, WIRE_DECIMALS)

    def price_short(self, ticks: int) -> str:
        """A price with the tick's decimals (Coinbase style)."""
        return (
            fmt_units(ticks, self.price_decimals) if self._tick_is_pow10 else str(self.price(ticks))
        )

    def qty_short(self, lots: int) -> str:
        """A quantity with the step's decimals (Coinbase style)."""
        return fmt_units(lots, self.qty_decimals) if self._step_is_pow10 else str(self.qty(lots))

    def price(self, ticks: int) -> Decimal:
        """A price in ticks as an exact Decimal."""
        return ticks * self.tick_size

    def qty(self, lots: int) -> Decimal:
        """A quantity in lots as an exact Decimal."""
        return lots * self.step_size

    @property
    def _tick_is_pow10(self) -> bool:
        return self.tick_size.normalize().as_tuple().digits == (1,)

    @property
    def _step_is_pow10(self) -> bool:
        return self.step_size.normalize().as_tuple().digits == (1,)


def split_symbol(symbol: str) -> tuple[str, str]:
    """Split ``BTCUSDT`` into ``("BTC", "USDT")`` by known quote suffixes."""
    for quote in _QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            return symbol[: -len(quote)], quote
    raise SimConfigError(f"symbol={symbol!r}: cannot tell the quote asset; pass a SymbolSpec")


def default_spec(symbol: str, start_price: Decimal | str | None = None) -> SymbolSpec:
    """A reasonable spec for ``symbol`` (known majors get realistic tick/lot sizes). A
    Coinbase product id names the same market: ``BTC-USDT`` is ``BTCUSDT``."""
    symbol = symbol.upper().replace("-", "")
    price, tick, step, mean = _DEFAULTS.get(symbol, ("100", "0.01", "0.001", "10"))
    base, quote = split_symbol(symbol)
    return SymbolSpec(
        symbol=symbol,
        start_price=Decimal(start_price if start_price is not None else price),
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        mean_level_qty=Decimal(mean),
        base_asset=base,
        quote_asset=quote,
    )
