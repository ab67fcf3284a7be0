"""Errors of the observability package."""

from __future__ import annotations


class ObservabilityError(Exception):
    """Root error: metrics serving, Prometheus checks, logging setup."""


class PromCheckError(ObservabilityError):
    """A throwaway Prometheus could not start, or an expression returned no data."""


class LoggingConfigError(ObservabilityError, ValueError):
    """A logging setting (format, level) has a value we do not know."""
