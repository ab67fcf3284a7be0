"""Errors raised by :mod:`algostream.execution`. One root: :class:`ExecutionError`.

Messages name the field or order and the offending value. They never contain an API key
or secret: the client only ever passes status codes, Binance error codes and messages.
"""

from __future__ import annotations

from algostream.model.enums import OrderStatus


class ExecutionError(Exception):
    """Root of every error raised by the execution package."""


class IllegalTransitionError(ExecutionError):
    """An order was asked to move between two states the lifecycle does not allow."""

    def __init__(self, client_order_id: str, from_status: OrderStatus, to_status: OrderStatus):
        self.client_order_id = client_order_id
        self.from_status = from_status
        self.to_status = to_status
        super().__init__(
            f"order {client_order_id!r}: illegal transition "
            f"{from_status.value} -> {to_status.value}"
        )


class OrderStateError(ExecutionError):
    """A lifecycle operation had an invalid argument (over-fill, bad price, ...)."""


class BookError(ExecutionError):
    """A book given to the slippage estimator or paper broker is malformed."""


class UnknownOrderError(ExecutionError):
    """A cancel or query named a client order id nobody knows."""

    def __init__(self, client_order_id: str) -> None:
        self.client_order_id = client_order_id
        super().__init__(f"client_order_id {client_order_id!r}: no such order")


class AmendRejectedError(ExecutionError):
    """An edit of an open order (new price / quantity) that was refused, locally (an
    order type or venue that cannot be edited) or by the venue; the order is unchanged."""

    def __init__(self, client_order_id: str, reason: str) -> None:
        super().__init__(f"amend of {client_order_id!r} refused: {reason}")
        self.client_order_id = client_order_id
        self.reason = reason


class BinanceError(ExecutionError):
    """The Binance API answered with an error (HTTP status and, if any, Binance code)."""

    def __init__(self, status: int, code: int | None, message: str, path: str = "") -> None:
        self.status = status
        self.code = code
        self.message = message
        self.path = path
        super().__init__(f"binance {path} HTTP {status} code {code}: {message}")


class OrderRejectedError(BinanceError):
    """The venue definitely refused the order (-1013 filter, -2010 new order rejected, ...).

    The order was not placed; it is safe to report it as REJECTED.
    """


class AuthError(BinanceError):
    """API key or signature refused (-1022, -2014, -2015): check the credentials."""


class RateLimitedError(BinanceError):
    """429/418 persisted past the retry budget. The request was not executed."""

    def __init__(
        self, status: int, code: int | None, message: str, retry_after_s: float, path: str = ""
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(status, code, message, path)


class OrderStatusUnknownError(ExecutionError):
    """After the retry budget the venue's state of an order could not be established.

    The order may or may not exist; reconcile before doing anything else with it.
    """

    def __init__(self, client_order_id: str, attempts: int, last_error: str) -> None:
        self.client_order_id = client_order_id
        self.attempts = attempts
        self.last_error = last_error
        super().__init__(
            f"client_order_id {client_order_id!r}: status unknown after {attempts} attempts "
            f"(last error: {last_error}); reconcile before resubmitting"
        )


class TransientError(ExecutionError):
    """A request failed in a way whose outcome is unknown (timeout, 5xx, connection)."""

    def __init__(
        self, path: str, detail: str, status: int | None = None, venue: str = "binance"
    ) -> None:
        self.path = path
        self.detail = detail
        self.status = status
        super().__init__(f"{venue} {path}: outcome unknown ({detail})")


class TimestampError(BinanceError):
    """-1021: the request's timestamp is outside recvWindow; resync the clock offset."""


class CoinbaseError(ExecutionError):
    """The Coinbase API answered with an error: HTTP status, error code and message."""

    def __init__(self, status: int, error: str, message: str, path: str = "") -> None:
        self.status = status
        self.error = error
        self.message = message
        self.path = path
        super().__init__(f"coinbase {path} HTTP {status} {error}: {message}")


class CoinbaseRejectedError(CoinbaseError):
    """Coinbase refused the order (``success: false``, e.g. INSUFFICIENT_FUND); not placed."""


class CoinbaseAuthError(CoinbaseError):
    """HTTP 401: the JWT was refused (key name, signature, ``uri`` or its 2 minutes)."""


class CoinbaseRateLimitedError(CoinbaseError):
    """HTTP 429 persisted past the retry budget. The request was not executed."""

    def __init__(self, status: int, message: str, retry_after_s: float, path: str = "") -> None:
        self.retry_after_s = retry_after_s
        super().__init__(status, "RATE_LIMITED", message, path)
