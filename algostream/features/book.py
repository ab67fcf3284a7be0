"""Order-book features from the latest :class:`~algostream.model.records.BookTop`.

They are taken from the record's own derived fields (``spread``, ``mid``, ``imbalance``,
``microprice``), which the book agent computes exactly in Decimal; ratios are converted to
float once here.

* ``spread`` — best ask minus best bid, in price units;
* ``spread_bps`` — ``spread / mid * 1e4``;
* ``imbalance`` — as published in the record (bid size vs ask size at the top, in [-1, 1]);
* ``microprice_offset_bps`` — ``(microprice - mid) / mid * 1e4``: > 0 when the size-weighted
  price leans towards the ask (buy pressure).

>>> from decimal import Decimal
>>> top = BookTop(instrument="X:Y", ts_event=1, ts_init=1, record_id="b", lineage_id="u",
...               bids=(), asks=(), mid=Decimal("100"), spread=Decimal("0.02"),
...               imbalance=0.25, microprice=Decimal("100.005"), update_id=1)
>>> sorted(book_features(top).items())  # doctest: +NORMALIZE_WHITESPACE
[('imbalance', 0.25), ('microprice_offset_bps', 0.5), ('spread', 0.02), ('spread_bps', 2.0)]
"""

from __future__ import annotations

import math
from decimal import Decimal

from algostream.model.records import BookTop

BOOK_FEATURE_NAMES: tuple[str, ...] = (
    "spread",
    "spread_bps",
    "imbalance",
    "microprice_offset_bps",
)

_BPS = Decimal(10_000)


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def book_features(top: BookTop) -> dict[str, float | None]:
    """The book features of one ``BookTop``; a feature whose inputs are missing is ``None``."""
    mid = top.mid if top.mid is not None and top.mid > 0 else None
    spread = float(top.spread) if top.spread is not None else None
    spread_bps = float(top.spread / mid * _BPS) if top.spread is not None and mid else None
    offset = float((top.microprice - mid) / mid * _BPS) if top.microprice and mid else None
    return {
        "spread": _finite(spread),
        "spread_bps": _finite(spread_bps),
        "imbalance": _finite(top.imbalance),
        "microprice_offset_bps": _finite(offset),
    }


def empty_book_features() -> dict[str, float | None]:
    """All book features unknown (no book seen yet)."""
    return dict.fromkeys(BOOK_FEATURE_NAMES)
