"""Errors raised by :mod:`algostream.risk`. One root: :class:`RiskError`.

A risk decision that says *no* is never an exception: it is an ``OrderRejected`` record.
These errors are for programming and data faults (a fill with a negative quantity, a
state snapshot that cannot be restored, an invalid filter definition).
"""

from __future__ import annotations


class RiskError(Exception):
    """Root of every error raised by :mod:`algostream.risk`."""


class InvalidFillError(RiskError):
    """A fill cannot be applied to a ledger; the message names the field and the value."""


class FilterError(RiskError):
    """An :class:`~algostream.risk.limits.InstrumentFilters` field is invalid."""


class StateRestoreError(RiskError):
    """A state snapshot passed to ``from_state`` is malformed; names the key and value."""


class ControlAuthError(RiskError):
    """A control command the gate refuses: unsigned, forged, outside the time window,
    replayed, or no operator key configured. ``kind`` says which (a metric label)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
