"""Observability: the Prometheus metrics registry and structured logging setup.

- :mod:`algostream.observability.metrics`: every ``algostream_*`` metric in one registry,
  ``start_metrics_server``, ``metrics_handler`` (aiohttp/Faust), ``observe``.
- :mod:`algostream.observability.logging`: ``configure_logging``, ``log_context``,
  ``register_secret`` (secrets are masked in every log line).
- :mod:`algostream.observability.promcheck`: start a throwaway Prometheus and check that
  PromQL expressions return data (used by tests).
"""

from algostream.observability.errors import ObservabilityError

__all__ = ["ObservabilityError"]
