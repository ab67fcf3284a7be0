"""aiokafka client settings built from :class:`~algostream.config.KafkaConfig`.

Security settings (SASL/TLS) pass through for real clusters; the password is a SecretStr
revealed only here, at the client boundary.
"""

from __future__ import annotations

import ssl
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner

from algostream.config import KafkaConfig


def client_kwargs(cfg: KafkaConfig) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and the admin client."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": cfg.bootstrap_servers,
        "client_id": cfg.client_id,
        "security_protocol": cfg.security_protocol,
    }
    if cfg.security_protocol in ("SSL", "SASL_SSL"):
        kwargs["ssl_context"] = ssl.create_default_context(cafile=cfg.ssl_cafile)
    if cfg.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = cfg.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = cfg.sasl_username
        kwargs["sasl_plain_password"] = (
            cfg.sasl_password.get_secret_value() if cfg.sasl_password else None
        )
    return kwargs


def faust_credentials(cfg: KafkaConfig) -> Any:
    """The Faust ``broker_credentials`` for ``cfg`` (``None`` for PLAINTEXT).

    Faust builds its own aiokafka clients; these credentials make them connect exactly as
    :func:`client_kwargs` does (same protocol, mechanism, user, password and CA file).
    """
    from faust.auth import SASLCredentials, SSLCredentials

    context = (
        ssl.create_default_context(cafile=cfg.ssl_cafile)
        if cfg.security_protocol in ("SSL", "SASL_SSL")
        else None
    )
    if cfg.security_protocol.startswith("SASL"):
        return SASLCredentials(
            username=cfg.sasl_username,
            password=cfg.sasl_password.get_secret_value() if cfg.sasl_password else None,
            ssl_context=context,
            mechanism=cfg.sasl_mechanism or "PLAIN",
        )
    if context is not None:
        return SSLCredentials(context)
    return None


def make_producer(cfg: KafkaConfig, **overrides: Any) -> AIOKafkaProducer:
    """An idempotent producer (acks=all) tuned for latency: linger from config (default 0)."""
    kwargs = client_kwargs(cfg) | {
        "acks": "all" if cfg.acks == "all" else int(cfg.acks),
        "enable_idempotence": cfg.acks == "all",
        "linger_ms": cfg.linger_ms,
        "compression_type": None,
        "request_timeout_ms": 30000,
    }
    return AIOKafkaProducer(**(kwargs | overrides))


class Partitions:
    """The partition aiokafka's default partitioner gives each key (murmur2 of the key over
    the topic's partitions), worked out once per ``(topic, key)``: aiokafka runs its pure
    Python murmur2 on every ``send`` (~6% of the ingestor's CPU under py-spy), and the keys
    are a handful of instruments. A topic's partition count changes only with the pipeline
    stopped (README: partitions), so the answer holds for the life of the process."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, bytes], int] = {}

    def get(self, topic: str, key: bytes) -> int | None:
        return self._known.get((topic, key))

    async def of(self, producer: AIOKafkaProducer, topic: str, key: bytes) -> int:
        """``key``'s partition of ``topic`` (waits for the topic's metadata once)."""
        part = self._known.get((topic, key))
        if part is None:
            await producer.client._wait_on_metadata(topic)
            parts = sorted(producer.client.cluster.partitions_for_topic(topic) or ())
            if not parts:
                raise KeyError(f"topic {topic!r}: no partitions in the cluster metadata")
            part = self._known[(topic, key)] = DefaultPartitioner()(key, parts, parts)
        return part


def make_consumer(cfg: KafkaConfig, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """A consumer with manual commits (commit only after outputs are produced)."""
    kwargs = client_kwargs(cfg) | {"enable_auto_commit": False, "auto_offset_reset": "earliest"}
    return AIOKafkaConsumer(*topics, **(kwargs | overrides))


def make_admin(cfg: KafkaConfig) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_kwargs(cfg), request_timeout_ms=15000)
