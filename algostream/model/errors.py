"""Errors raised by the model layer. One root: :class:`ModelError`."""

from __future__ import annotations


class ModelError(Exception):
    """Root of every error raised by :mod:`algostream.model`."""


class RecordDecodeError(ModelError):
    """A payload could not be decoded into a record.

    ``field`` is the dotted path of the first offending field (``"<payload>"`` when the
    bytes are not JSON at all) and ``value`` a short repr of what was found there.
    """

    def __init__(self, record_type: str, field: str, value: str, reason: str) -> None:
        self.record_type = record_type
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{record_type}: field '{field}' = {value}: {reason}")
