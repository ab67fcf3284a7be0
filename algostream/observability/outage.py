"""Quiet outages: Kafka client log lines aggregated into state changes.

While a broker is away aiokafka and Faust log every failed connection, metadata request
and heartbeat, several times a second per client: a 36 s outage wrote about 12,000 ERROR
lines across the ingestor and two workers (issue 28). :class:`OutageFilter`, installed on
the one root handler by :func:`~algostream.observability.logging.configure_logging` (and
Faust's logging config), lets through the first line of each kind from the Kafka client
libraries (logger, level and message with the numbers taken out) and at most one more per
:attr:`OutageFilter.repeat_s`; the others are counted in
``algostream_kafka_client_errors_total`` (one per failed attempt: the retries) and reported
as state changes, one line each:

* ``kafka unreachable`` at the first warning or error of a Kafka client library;
* ``kafka still unreachable`` every :attr:`OutageFilter.every_s` while they go on, with the
  attempts since the outage began and the lines held back;
* ``kafka reachable again`` once :attr:`OutageFilter.every_s` pass without one, with the
  outage's length (``algostream_kafka_reachable`` is 0 in between).

>>> import logging
>>> f = OutageFilter(every_s=10, repeat_s=60, clock=iter([0.0, 1.0, 2.0, 3.0]).__next__)
>>> rec = lambda: logging.LogRecord("aiokafka.conn", logging.ERROR, "", 0,
...     "Unable connect to node with id %s", (1,), None)
>>> [f.filter(rec()) for _ in range(3)]
[True, False, False]
>>> f.attempts
3
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from algostream.observability import metrics

#: loggers whose warnings and errors are held back to one per kind and repeat interval
LIBRARIES = ("aiokafka", "kafka", "faust", "mode")
#: of which the Kafka clients': their warnings and errors are what an outage looks like
CLIENTS = ("aiokafka", "kafka")
_NUMBERS = re.compile(r"\d+")
OWN_LOGGER = "algostream.kafka.outage"
#: the fields of its lines (rendered by :func:`~algostream.observability.logging.make_formatter`)
FIELDS = ("first", "down_s", "attempts", "lines_held_back")
log = logging.getLogger(OWN_LOGGER)

CLIENT_ERRORS = metrics.KAFKA_CLIENT_ERRORS
REACHABLE = metrics.KAFKA_REACHABLE


class OutageFilter(logging.Filter):
    """Aggregate the Kafka client libraries' warnings and errors (module doc)."""

    def __init__(
        self,
        every_s: float = 10.0,
        repeat_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.every_s = every_s
        self.repeat_s = repeat_s
        self.clock = clock
        self._lock = threading.Lock()
        self._last_pass: dict[tuple[str, int, str], float] = {}
        self.attempts = 0  # library warnings/errors since the outage began
        self.held_back = 0  # of which not logged
        self.down_since: float | None = None
        self._last_error = 0.0
        self._last_report = 0.0
        REACHABLE.set(1)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith(LIBRARIES):
            return True
        now = self.clock()
        report: tuple[str, dict[str, Any]] | None = None
        with self._lock:
            if record.name.startswith(CLIENTS):
                report = self._attempt(record, now)
            key = (record.name, record.levelno, _NUMBERS.sub("#", str(record.msg))[:120])
            last = self._last_pass.get(key)
            passes = last is None or now - last >= self.repeat_s
            if passes:
                self._last_pass[key] = now
            else:
                self.held_back += 1
        if report is not None:
            REACHABLE.set(0)
            log.warning(report[0], extra=report[1])
        return passes

    def _attempt(self, record: logging.LogRecord, now: float) -> tuple[str, dict[str, Any]] | None:
        """Count one failed attempt of a Kafka client; the state change to report, if any."""
        CLIENT_ERRORS.labels(logger=record.name).inc()
        self.attempts += 1
        self._last_error = now
        if self.down_since is None:
            self.down_since = self._last_report = now
            return "kafka unreachable", {"first": record.getMessage()[:300]}
        if now - self._last_report >= self.every_s:
            self._last_report = now
            return "kafka still unreachable", self._progress(now)
        return None

    def _progress(self, now: float) -> dict[str, Any]:
        assert self.down_since is not None
        return {
            "down_s": round(now - self.down_since, 1),
            "attempts": self.attempts,
            "lines_held_back": self.held_back,
        }

    def tick(self) -> None:
        """Say ``kafka reachable again`` once the libraries have been quiet for
        :attr:`every_s` (called every second by :func:`start_ticker`)."""
        now = self.clock()
        with self._lock:
            if self.down_since is None or now - self._last_error < self.every_s:
                return
            progress = self._progress(self._last_error)
            self.down_since = None
            self.attempts = self.held_back = 0
            self._last_pass.clear()
        REACHABLE.set(1)
        log.warning("kafka reachable again", extra=progress)


_filter: OutageFilter | None = None
_ticker: threading.Thread | None = None


def outage_filter() -> OutageFilter:
    """The process's one filter (shared by every handler it is installed on), ticking."""
    global _filter, _ticker
    if _filter is None:
        _filter = OutageFilter()
    if _ticker is None:
        _ticker = threading.Thread(target=_tick_forever, name="kafka-outage", daemon=True)
        _ticker.start()
    return _filter


def _tick_forever() -> None:
    while True:
        time.sleep(1.0)  # a daemon thread's period, not a test wait
        if _filter is not None:
            _filter.tick()
