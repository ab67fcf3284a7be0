"""Binance spot REST error answers, as documented, and the parameter checks that raise them.

Every refusal the simulator's REST API gives is an :class:`ApiError` built here, so the
table in ``algostream/sim/ERRORS.md`` (condition, HTTP status, code, message) is this
module on one page. Parameters are checked in Binance's order: present (-1102), legal
characters (-1100), precision (-1111), then business rules.

>>> decimal_param({"quantity": "0.123456789"}, "quantity")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
algostream.sim.binance_errors.ApiError: HTTP 400 code -1111: Parameter 'quantity' has too ...
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from algostream.sim.errors import SimError

#: Binance prints and accepts at most 8 decimals (``baseAssetPrecision``/``quotePrecision``).
MAX_DECIMALS = 8
_DECIMAL_RE = re.compile(r"^([0-9]{1,20})(\.[0-9]{1,20})?$")
_SYMBOL_RE = re.compile(r"^[A-Z0-9-_.]{1,20}$")
_INT_RE = re.compile(r"^[0-9]{1,20}$")
_ID_RE = re.compile(r"^[a-zA-Z0-9-_]{1,36}$")


class ApiError(SimError):
    """A Binance error answer: HTTP status, code and message (and extra headers)."""

    def __init__(self, status: int, code: int, msg: str, headers: dict[str, str] | None = None):
        self.status = status
        self.code = code
        self.msg = msg
        self.headers = headers or {}
        super().__init__(f"HTTP {status} code {code}: {msg}")


def unknown_error() -> ApiError:
    """-1000: the simulator failed (a bug); never the answer to bad input."""
    return ApiError(500, -1000, "An unknown error occurred while processing the request.")


def mandatory(name: str) -> ApiError:
    """-1102: a required parameter is missing or empty."""
    return ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


def illegal_chars(name: str, legal: str) -> ApiError:
    """-1100: a parameter has characters outside its legal range."""
    return ApiError(
        400, -1100, f"Illegal characters found in parameter '{name}'; legal range is '{legal}'."
    )


def too_much_precision(name: str) -> ApiError:
    """-1111: more decimals than the asset precision (8)."""
    return ApiError(400, -1111, f"Parameter '{name}' has too much precision.")


def invalid_symbol() -> ApiError:
    """-1121: a well-formed symbol that is not listed."""
    return ApiError(400, -1121, "Invalid symbol.")


def rejected(msg: str) -> ApiError:
    """-2010: new order rejected (insufficient balance, duplicate, would take, ...)."""
    return ApiError(400, -2010, msg)


INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
DUPLICATE_ORDER = "Duplicate order sent."
WOULD_TAKE = "Order would immediately match and take."
WOULD_TRIGGER = "Stop price would trigger immediately."


def param(params: Mapping[str, str], name: str) -> str:
    """A mandatory parameter's raw value (-1102 when missing or empty)."""
    value = params.get(name)
    if not value:
        raise mandatory(name)
    return value


def symbol_param(params: Mapping[str, str], name: str = "symbol") -> str:
    """A symbol: -1102 missing, -1100 outside ``^[A-Z0-9-_.]{1,20}$`` (e.g. lower case)."""
    value = param(params, name)
    if not _SYMBOL_RE.match(value):
        raise illegal_chars(name, "^[A-Z0-9-_.]{1,20}$")
    return value


def decimal_param(params: Mapping[str, str], name: str, *, positive: bool = True) -> Decimal:
    """A price/quantity: -1100 when not ``^([0-9]{1,20})(\\.[0-9]{1,20})?$``, -1111 when
    it has more than 8 significant decimals, -1100 "Illegal value" when zero."""
    raw = param(params, name)
    if not _DECIMAL_RE.match(raw):
        raise illegal_chars(name, "^([0-9]{1,20})(\\.[0-9]{1,20})?$")
    value = Decimal(raw)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_DECIMALS:
        raise too_much_precision(name)
    if positive and value <= 0:
        raise ApiError(400, -1100, f"Illegal value for parameter '{name}': {raw}.")
    return value


def int_param(params: Mapping[str, str], name: str) -> int:
    """A non-negative integer parameter (-1102 missing, -1100 not digits)."""
    raw = param(params, name)
    if not _INT_RE.match(raw):
        raise illegal_chars(name, "^[0-9]{1,20}$")
    return int(raw)


def optional_int(params: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """An optional integer parameter (-1100 when present but not digits)."""
    if not params.get(name):
        return default
    return int_param(params, name)


def client_id_param(params: Mapping[str, str], name: str) -> str | None:
    """An optional client order id: ``^[a-zA-Z0-9-_]{1,36}$`` (-1100 otherwise)."""
    value = params.get(name)
    if value is None:
        return None
    if not _ID_RE.match(value):
        raise illegal_chars(name, "^[a-zA-Z0-9-_]{1,36}$")
    return value


def enum_param(params: Mapping[str, str], name: str, allowed: tuple[str, ...], code: int) -> str:
    """One of ``allowed`` (-1102 missing; ``code`` with Binance's message otherwise)."""
    value = param(params, name)
    if value not in allowed:
        messages = {
            -1115: "Invalid timeInForce.",
            -1116: "Invalid orderType.",
            -1117: "Invalid side.",
        }
        raise ApiError(400, code, messages.get(code, f"Invalid {name}."))
    return value
