"""Errors raised by :mod:`algostream.signals`. One root: :class:`SignalError`."""

from __future__ import annotations

from pathlib import Path


class SignalError(Exception):
    """Root of every error raised by :mod:`algostream.signals`."""


class UnknownStrategyError(SignalError):
    """``build_strategy`` was given a name that is not registered."""


class StrategyStateError(SignalError):
    """A saved strategy state cannot be restored; names the key and value."""


class ModelTrainError(SignalError):
    """``train_model`` cannot train on the data given (missing column, too few samples)."""


class MissingExtraError(SignalError):
    """scikit-learn / skops are not installed (the ``ml`` extra)."""


class ModelLoadError(SignalError):
    """A model file was refused or could not be loaded; never unpickled.

    ``path`` is the file, ``untrusted_types`` the types it contains that are not allowed
    (empty when the refusal is for another reason, e.g. a corrupt file).
    """

    def __init__(self, path: Path, reason: str, untrusted_types: tuple[str, ...] = ()) -> None:
        self.path = path
        self.untrusted_types = untrusted_types
        super().__init__(f"model file {str(path)!r}: {reason}")


class StrategyOrderError(SignalError):
    """A strategy asked for an order that cannot be placed; names the argument and value."""
