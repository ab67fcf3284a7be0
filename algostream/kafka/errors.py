"""Errors of the Kafka layer. One root: :class:`KafkaLayerError`."""

from __future__ import annotations


class KafkaLayerError(Exception):
    """Root of every error raised by :mod:`algostream.kafka`."""


class BrokerError(KafkaLayerError):
    """The local broker could not be fetched, formatted or started (message has the log tail)."""


class CatalogError(KafkaLayerError):
    """``topics/topics.toml`` is invalid or disagrees with the cluster in a way we won't fix."""
