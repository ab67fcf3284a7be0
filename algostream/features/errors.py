"""Errors raised by :mod:`algostream.features`. One root: :class:`FeatureError`."""

from __future__ import annotations


class FeatureError(Exception):
    """Root of every error raised by :mod:`algostream.features`."""


class FeatureInputError(FeatureError):
    """Input data is unusable (missing column, NaN, non-positive price); names field and value."""


class FeatureStateError(FeatureError):
    """A saved state cannot be restored (wrong version, mismatched parameter, bad value)."""
