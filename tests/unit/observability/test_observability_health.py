"""``/healthz`` on the metrics port, and what makes a process unhealthy."""

from __future__ import annotations

import json

import httpx

from algostream.observability.health import Health, with_health
from algostream.observability.metrics import serve_metrics


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_problem_makes_healthz_503_and_names_it() -> None:
    server = serve_metrics(0, addr="127.0.0.1")
    try:
        from algostream.observability.health import HEALTH

        url = f"http://127.0.0.1:{server.port}"
        ok = httpx.get(f"{url}/healthz")
        assert ok.status_code == 200 and ok.json() == {"ok": True, "problems": {}}
        HEALTH.report("stage book", "records waiting, no progress for 31s")
        try:
            bad = httpx.get(f"{url}/healthz")
            assert bad.status_code == 503
            assert bad.json()["problems"] == {"stage book": "records waiting, no progress for 31s"}
            assert "algostream_stage_stalled" in httpx.get(f"{url}/metrics").text
        finally:
            HEALTH.report("stage book", None)
        assert httpx.get(f"{url}/healthz").status_code == 200
    finally:
        server.close()


def test_an_event_loop_that_stops_beating_is_a_problem() -> None:
    clock = Clock()
    h = Health(clock=clock)
    h.beat(limit_s=30)
    clock.now += 29
    assert h.problems() == {} and h.failing_for() == 0
    clock.now += 2
    assert list(h.problems()) == ["event loop"]
    clock.now += 10
    assert h.failing_for() == 10
    h.beat(limit_s=30)
    assert h.problems() == {} and h.failing_for() == 0


def test_failing_for_counts_from_the_first_problem_until_none_is_left() -> None:
    clock = Clock()
    h = Health(clock=clock)
    h.report("stage book", "stalled")
    clock.now += 5
    h.report("stage taps", "stalled")
    clock.now += 5
    h.report("stage book", None)
    assert h.failing_for() == 10
    h.report("stage taps", None)
    assert h.failing_for() == 0


def test_other_paths_are_the_wrapped_app() -> None:
    calls = []

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [])
        return [b"metrics"]

    served = with_health(app, Health())
    assert list(served({"PATH_INFO": "/metrics"}, lambda *_: None)) == [b"metrics"]
    body = b"".join(served({"PATH_INFO": "/healthz"}, lambda *_: None))
    assert json.loads(body) == {"ok": True, "problems": {}} and calls == ["/metrics"]
