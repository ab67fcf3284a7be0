"""A worker's health: ``/healthz`` next to ``/metrics``, and a restart when it hangs.

A worker can stop making progress without dying: in issue 28 a market worker stopped
processing 2 s after start while its input grew by 20,650 records, and nothing noticed.
The worker's watchdog (:mod:`streams.watchdog`) reports each stage's progress here every
second: a stage with records waiting and no progress for ``workers.stall_after_s`` is a
*problem*, and so is an event loop that has not run the watchdog for that long. Then:

* ``GET /healthz`` on the metrics port answers 503 with the problems (200 ``ok`` else):
  the probe of compose, Kubernetes or :meth:`Supervisor.supervise
  <algostream.supervisor.Supervisor.supervise>`;
* ``algostream_stage_stalled{agent,stage}`` is 1 (alert ``StageStalled``);
* after ``workers.stall_restart_s`` of problems the process exits with
  :data:`EXIT_STALLED` (a thread of its own: it works with the event loop stuck), and its
  supervisor starts it again. Offsets are committed only after outputs are on the broker,
  so a restart is as safe as ``kill -9``.

>>> h = Health(clock=lambda: 0.0)
>>> h.report("stage book", "200 records waiting, no progress for 31s")
>>> h.problems()
{'stage book': '200 records waiting, no progress for 31s'}
>>> h.report("stage book", None)
>>> h.problems(), h.failing_for()
({}, 0.0)
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler

from algostream.observability import metrics

#: the exit code of a worker that stopped itself because it hung (sysexits EX_TEMPFAIL)
EXIT_STALLED = 75
HEALTH_PATH = "/healthz"
#: the fields of its log lines (rendered by ``logging.make_formatter``)
FIELDS = ("problems", "failing_s")
log = logging.getLogger("algostream.health")

STAGE_STALLED = metrics.STAGE_STALLED
SINCE_PROGRESS = metrics.STAGE_SINCE_PROGRESS

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Health:
    """The problems of this process, by name (thread safe), and since when it has had any."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._problems: dict[str, str] = {}
        self._failing_since: float | None = None
        self._beat: float | None = None
        self.beat_limit_s: float | None = None

    def report(self, name: str, problem: str | None) -> None:
        """Set (a text) or clear (``None``) the problem ``name``."""
        now = self.clock()
        with self._lock:
            if problem is None:
                self._problems.pop(name, None)
            else:
                self._problems[name] = problem
            self._settle(now)

    def beat(self, limit_s: float) -> None:
        """The event loop ran: a problem if the next beat is more than ``limit_s`` late."""
        with self._lock:
            self._beat, self.beat_limit_s = self.clock(), limit_s

    def problems(self) -> dict[str, str]:
        now = self.clock()
        with self._lock:
            self._settle(now)
            return dict(self._problems)

    def failing_for(self) -> float:
        """Seconds this process has had a problem without a break (0: healthy)."""
        now = self.clock()
        with self._lock:
            self._settle(now)
            return 0.0 if self._failing_since is None else now - self._failing_since

    def _settle(self, now: float) -> None:
        late = self._beat is not None and self.beat_limit_s is not None
        if late and now - self._beat > self.beat_limit_s:  # type: ignore[operator]
            self._problems["event loop"] = f"blocked for {now - self._beat:.0f}s"  # type: ignore[operator]
        else:
            self._problems.pop("event loop", None)
        if not self._problems:
            self._failing_since = None
        elif self._failing_since is None:
            self._failing_since = now


#: the process's health (one per process, like the metrics registry)
HEALTH = Health()


def with_health(app: WsgiApp, health: Health = HEALTH) -> WsgiApp:
    """``app`` (the metrics WSGI app) with ``GET /healthz`` answered from ``health``."""

    def serve(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != HEALTH_PATH:
            return app(environ, start_response)
        problems = health.problems()
        status = "503 Service Unavailable" if problems else "200 OK"
        body = json.dumps({"ok": not problems, "problems": problems}).encode()
        start_response(status, [("Content-Type", "application/json")])
        return [body]

    return serve


class QuietHandler(WSGIRequestHandler):
    """No access log line per scrape or probe."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def restart_when_stuck(restart_after_s: float, health: Health = HEALTH) -> threading.Thread:
    """A daemon thread that ends the process (:data:`EXIT_STALLED`) once it has had a
    problem for ``restart_after_s``, for its supervisor to start it again."""

    def watch() -> None:
        while True:
            time.sleep(1.0)  # the thread's period, not a wait for something
            failing = health.failing_for()
            if failing >= restart_after_s:
                log.error(
                    "worker stalled: exiting to be restarted",
                    extra={"problems": health.problems(), "failing_s": round(failing, 1)},
                )
                for handler in logging.getLogger().handlers:
                    handler.flush()
                sys.stdout.flush()
                os._exit(EXIT_STALLED)

    thread = threading.Thread(target=watch, name="stall-restart", daemon=True)
    thread.start()
    return thread
