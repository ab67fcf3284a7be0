"""A stage that hangs is detected and recovered (issue 28: a market worker stopped
processing while its input grew, and nothing noticed).

The market worker's book reader is frozen mid-stream (``ALGOSTREAM_FAULT_HANG``: the
reader finds the file the test creates and never finishes that batch) while the simulator
and the ingestor keep writing ``md.book``. Asserted: within ``workers.stall_after_s`` its
``/healthz`` answers 503 naming the stage and ``algostream_stage_stalled`` is 1 (what the
``StageStalled`` rule fires on, tested with promtool); then it is restarted, either by
itself (it exits with code 75 after ``workers.stall_restart_s``, and the supervisor starts
it again) or, with the self-restart off, by the supervisor's health check; and the new
process publishes ``book.top`` again and is healthy.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from algostream.model import BookTop
from algostream.observability.health import EXIT_STALLED
from algostream.supervisor import Supervisor
from tests.faults.feed_kit import logs, poll, scrape, start_pipeline, wait_live
from tests.kafka_kit import decoded, free_port, read_until

STALL_AFTER_S = 4


def start_market(supervisor: Supervisor, env: dict[str, str], port: int) -> None:
    supervisor.start(
        "market",
        "worker",
        "market",
        "--web-port",
        "0",
        "--metrics-port",
        str(port),
        env=env,
        restart=True,
        health_url=f"http://127.0.0.1:{port}/healthz",
    )


async def health(port: int) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as http:
        resp = await http.get(f"http://127.0.0.1:{port}/healthz")
        return resp.status_code, resp.json()


@pytest.mark.parametrize("restarted_by", ["itself", "supervisor"])
async def test_a_hung_stage_is_detected_and_restarted(
    provisioned: Any, supervisor: Supervisor, tmp_path: Path, restarted_by: str
) -> None:
    s = provisioned
    hang = tmp_path / "hang-book"
    env = {
        "ALGOSTREAM__WORKERS__STALL_AFTER_S": str(STALL_AFTER_S),
        # itself: exits 4 s after the stall is seen; supervisor: never exits by itself
        "ALGOSTREAM__WORKERS__STALL_RESTART_S": "8" if restarted_by == "itself" else "0",
        "ALGOSTREAM_FAULT_HANG": f"book:{hang}",
    }
    p = start_pipeline(supervisor, (), rate=50)
    port = free_port()
    start_market(supervisor, p.env | env, port)
    await wait_live(s, supervisor)
    assert (await health(port))[0] == 200

    hang.touch()  # the reader's next batch hangs
    await poll(lambda: not hang.exists(), 30, "the book reader to take the hang")
    frozen_at = time.monotonic()

    async def unhealthy() -> dict[str, Any] | None:
        status, body = await health(port)
        return body if status == 503 else None

    body = await poll(unhealthy, STALL_AFTER_S + 10, "/healthz to fail")
    assert "stage book" in body["problems"], body
    values = await scrape(port)
    assert values['algostream_stage_stalled{agent="market",stage="book"}'] == 1, values
    assert time.monotonic() - frozen_at >= STALL_AFTER_S - 1.5  # not before the bound

    child = supervisor.children["market"]
    if restarted_by == "itself":
        await poll(lambda: child.proc.poll() is not None, 30, "the worker to exit")  # type: ignore[union-attr]
        assert child.proc.poll() == EXIT_STALLED, logs(supervisor)  # type: ignore[union-attr]
        assert "worker stalled: exiting to be restarted" in child.log.read_text()
    t_restart = time.time_ns()
    await poll(lambda: supervisor.supervise() == ["market"], 30, "the supervisor's restart")
    assert child.restarts == 1

    def new_tops(msgs: Any) -> bool:
        return any(t.ts_init > t_restart for t in decoded(msgs, BookTop))

    await read_until(s, "book.top", new_tops, timeout_s=120)

    async def healthy() -> bool:
        try:
            return (await health(port))[0] == 200
        except httpx.TransportError:  # not listening yet
            return False

    await poll(healthy, 60, "the restarted worker healthy")
    assert supervisor.supervise() == [] and not supervisor.dead(), logs(supervisor)
