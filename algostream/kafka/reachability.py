"""Wait for the Kafka cluster before a process starts its clients, and say so.

A service started before its broker (``docker compose up``, a restarted cluster) used to
fail in its client's start-up and exit, over and over, with the reason buried in a client
traceback. Now the ingestor and the workers start their ``/metrics`` server first, then
wait here: ``algostream_kafka_reachable`` is 0 while they wait (``algostream health``
reports the service unhealthy), one line says what is unreachable, another every
``report_every_s`` while it still is, and one when it answers.

>>> from algostream.kafka.reachability import wait_for_kafka
>>> wait_for_kafka("127.0.0.1:9092", timeout_s=30)   # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from algostream.kafka.errors import BrokerError
from algostream.kafka.local_broker import answers_metadata
from algostream.observability.metrics import KAFKA_REACHABLE

log = structlog.get_logger("algostream.kafka")


def wait_for_kafka(
    bootstrap: str,
    *,
    timeout_s: float | None = None,
    retry_s: float = 2.0,
    report_every_s: float = 10.0,
    probe: Callable[[str], bool] = answers_metadata,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Block until ``bootstrap`` answers a metadata request (forever by default).

    Raises :class:`BrokerError` naming the address once ``timeout_s`` has passed.
    """
    start = clock()
    KAFKA_REACHABLE.set(0)
    last_report: float | None = None
    while not probe(bootstrap):
        now = clock()
        waited = now - start
        if timeout_s is not None and waited >= timeout_s:
            raise BrokerError(
                f"kafka.bootstrap_servers {bootstrap!r} did not answer in {timeout_s:.0f} s"
            )
        if last_report is None or now - last_report >= report_every_s:
            event = "kafka unreachable" if last_report is None else "kafka still unreachable"
            log.warning(event, bootstrap=bootstrap, waited_s=round(waited, 1))
            last_report = now
        sleep(retry_s)
    KAFKA_REACHABLE.set(1)
    if last_report is not None:
        log.info("kafka reachable", bootstrap=bootstrap, waited_s=round(clock() - start, 1))
