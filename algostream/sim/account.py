"""The simulated spot account: per-asset ``free`` and ``locked`` balances (exact Decimals).

A resting order locks what it could spend (a BUY locks ``price * qty`` of the quote, a
SELL locks ``qty`` of the base); a fill spends from the lock (a BUY filled below its limit
gets the difference back), and credits what it bought less the commission, which is
taken from the asset received as Binance does without BNB. Cancel or expiry unlocks
the rest. Anything that would make ``free`` negative is refused with ``-2010``.

>>> from decimal import Decimal as D
>>> acct = Account({"USDT": D("100")})
>>> acct.lock("USDT", D("60")); acct.row("USDT")
{'asset': 'USDT', 'free': '40', 'locked': '60'}
>>> acct.lock("USDT", D("50"))  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
algostream.sim.binance_errors.ApiError: HTTP 400 code -2010: Account has insufficient ...
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from algostream.sim.binance_errors import INSUFFICIENT_BALANCE, rejected

_ZERO = Decimal(0)


def _plain(value: Decimal) -> str:
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class Account:
    """Balances of the one simulated account (see module docs)."""

    def __init__(
        self, balances: Mapping[str, Decimal | str | int] | None = None, *, enforce: bool = True
    ) -> None:
        #: False: balances are tracked but never refuse an order (can go negative)
        self.enforce = enforce
        self.free: dict[str, Decimal] = {a.upper(): Decimal(v) for a, v in (balances or {}).items()}
        self.locked: dict[str, Decimal] = {}
        self.update_ms = 0

    def has(self, asset: str, amount: Decimal) -> bool:
        """Whether ``amount`` of ``asset`` is free."""
        return self.free.get(asset, _ZERO) >= amount

    def require(self, asset: str, amount: Decimal) -> None:
        """-2010 unless ``amount`` of ``asset`` is free."""
        if self.enforce and not self.has(asset, amount):
            raise rejected(INSUFFICIENT_BALANCE)

    def lock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` from free to locked (-2010 when not free)."""
        self.require(asset, amount)
        self.free[asset] = self.free.get(asset, _ZERO) - amount
        self.locked[asset] = self.locked.get(asset, _ZERO) + amount

    def unlock(self, asset: str, amount: Decimal) -> None:
        """Move ``amount`` back from locked to free."""
        amount = min(amount, self.locked.get(asset, _ZERO))
        self.locked[asset] = self.locked.get(asset, _ZERO) - amount
        self.free[asset] = self.free.get(asset, _ZERO) + amount

    def spend(self, asset: str, amount: Decimal, *, locked: bool) -> None:
        """Take ``amount`` of ``asset`` out of the account (from the lock or from free)."""
        book = self.locked if locked else self.free
        book[asset] = book.get(asset, _ZERO) - amount

    def credit(self, asset: str, amount: Decimal) -> None:
        """Add ``amount`` of ``asset`` to free."""
        self.free[asset] = self.free.get(asset, _ZERO) + amount

    def total(self, asset: str) -> Decimal:
        """free + locked."""
        return self.free.get(asset, _ZERO) + self.locked.get(asset, _ZERO)

    def row(self, asset: str) -> dict[str, str]:
        """One ``balances`` entry as Binance prints it."""
        return {
            "asset": asset,
            "free": _plain(self.free.get(asset, _ZERO)),
            "locked": _plain(self.locked.get(asset, _ZERO)),
        }

    def assets(self) -> list[str]:
        """Every asset the account has held, sorted."""
        return sorted(set(self.free) | set(self.locked))

    def rows(self, assets: list[str] | None = None) -> list[dict[str, str]]:
        """``balances`` for ``assets`` (all by default)."""
        return [self.row(a) for a in (self.assets() if assets is None else assets)]

    def position_event(self, assets: list[str], now_ms: int) -> dict[str, Any]:
        """The user data stream's ``outboundAccountPosition`` for the changed ``assets``."""
        rows = self.rows(sorted(set(assets)))
        return {
            "e": "outboundAccountPosition",
            "E": now_ms,
            "u": now_ms,
            "B": [{"a": r["asset"], "f": r["free"], "l": r["locked"]} for r in rows],
        }
