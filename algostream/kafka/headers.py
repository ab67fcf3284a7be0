"""Kafka record headers algostream writes.

``algostream-sent-ns``: the producer's wall clock (unix ns) when the record was handed to
the producer. Kafka's own record timestamp has millisecond resolution; stage latencies on
one machine are sub-millisecond, so the benchmark and tracing tools read this header.
"""

from __future__ import annotations

from collections.abc import Iterable

SENT_NS_HEADER = "algostream-sent-ns"


def sent_ns(headers: Iterable[tuple[str, bytes]] | None) -> int | None:
    """The ``algostream-sent-ns`` value of a record's headers, or ``None``."""
    for key, value in headers or ():
        if key == SENT_NS_HEADER:
            try:
                return int(value)
            except ValueError:
                return None
    return None
