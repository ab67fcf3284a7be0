"""`docker compose up` for real: the stack in docker-compose.yml on a real Docker engine.

Images: docker/build-images.sh builds the app image's wheels on the host and, where no
registry answers (as here), local equivalents of the upstream images (Debian bookworm by
debootstrap with Python, Kafka 3.9.1 from the Maven-fetched jars, Debian's Prometheus).
Grafana cannot run here (no image, no package): it is left out of `up` and said so; the
dashboards are checked against a real Prometheus by the observability tests.

Checks, in order on one stack: every service healthy; a paper fill on ``orders.events``
read from the host through the published Kafka port within two minutes; the compose
Prometheus has every scrape target up and the alert rules loaded; a SIGKILL
of the market worker's process, it comes back on its own and fills continue; `docker compose down
-v` leaves no container, network or volume of the project.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from algostream.config import load_settings
from algostream.model import OrderEvent, OrderStatus
from tests.kafka_kit import decoded, read_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

REPO = Path(__file__).resolve().parents[2]
PROJECT = "algostream-test"
FILES = ("-f", "docker-compose.yml", "-f", "tests/e2e/compose.test.yml")
#: everything but grafana (no image of it can be had here)
SERVICES = ("kafka", "simulator", "ingestor", "worker-market", "worker-trading", "prometheus")
LONG_RUNNING = SERVICES
KAFKA_FROM_HOST = "127.0.0.1:29092"
PROMETHEUS = "http://127.0.0.1:9090"


def _required() -> bool:
    return os.environ.get("ALGOSTREAM_REQUIRE_DOCKER_COMPOSE", "") not in ("", "0")


def _engine_and_compose() -> str | None:
    if shutil.which("docker") is None:
        return "docker is not installed (make tools)"
    for args in (["info"], ["compose", "version"]):
        done = subprocess.run(["docker", *args], capture_output=True, timeout=60)
        if done.returncode != 0:
            return f"`docker {' '.join(args)}` failed: {done.stderr.decode()[-300:]}"
    return None


def _images_env() -> dict[str, str]:
    """Run docker/build-images.sh (idempotent) and return the images it chose."""
    done = subprocess.run(
        ["bash", "docker/build-images.sh"],
        cwd=REPO,
        env=os.environ | {"PY": sys.executable},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    print(done.stderr.strip())
    pairs = (line.split("=", 1) for line in (REPO / "docker/images.env").read_text().split())
    return dict(pairs)


class Stack:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> str:
        done = subprocess.run(
            ["docker", "compose", "-p", PROJECT, *FILES, *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"docker compose {args}: {done.stderr[-3000:]}"
        return done.stdout

    def containers(self) -> dict[str, dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row for row in rows}

    def inspect(self, service: str) -> dict[str, Any]:
        cid = self.compose("ps", "--all", "-q", service).strip()
        out = subprocess.run(
            ["docker", "inspect", cid], capture_output=True, text=True, check=True
        ).stdout
        return dict(json.loads(out)[0])

    def logs(self, service: str, lines: int = 40) -> str:
        return self.compose("logs", "--no-color", "--tail", str(lines), service, check=False)


def poll(what: str, probe: Callable[[], Any], timeout_s: float, every_s: float = 2.0) -> Any:
    """``probe()`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every_s)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s (last: {last!r})")


def poll_quietly(probe: Callable[[], bool], timeout_s: float, every_s: float = 2.0) -> bool:
    """``probe()`` until it is true or the deadline; the caller's assert says what failed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(every_s)
    return False


@pytest.fixture(scope="module")
def stack(pytestconfig: pytest.Config) -> Iterator[Stack]:
    problem = _engine_and_compose()
    if problem is not None:
        if _required():
            pytest.fail(f"{problem}; required here (ALGOSTREAM_REQUIRE_DOCKER_COMPOSE)")
        pytest.skip(problem)
    terminal = pytestconfig.pluginmanager.getplugin("terminalreporter")

    def report(line: str) -> None:  # shown even with -q and output captured
        print(line)
        if terminal is not None:
            terminal.write_line(f"[compose] {line}")

    images = _images_env()
    env = (
        dict(os.environ)
        | images
        | {
            "GRAFANA_ADMIN_PASSWORD": secrets.token_urlsafe(16),
            "ALGOSTREAM_CONTROL_KEY": secrets.token_hex(32),
        }
    )
    stack = Stack(env)
    stack.compose("down", "-v", "--remove-orphans", check=False)
    report(f"images: {images}; grafana is not started (no image of it can be had here)")
    stack.compose("build", timeout=1200)
    size = subprocess.run(
        ["docker", "image", "inspect", "algostream:local", "--format", "{{.Size}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    report(f"algostream:local image size: {int(size) / 1e6:.0f} MB")
    try:
        stack.compose("up", "-d", "--wait", "--wait-timeout", "300", *SERVICES, timeout=900)
        yield stack
    except BaseException:
        for service in (*SERVICES, "topics"):
            print(f"--- {service}\n{stack.logs(service)}")
        raise
    finally:
        stack.compose("down", "-v", "--remove-orphans", "--timeout", "20", check=False)


async def _fills_after(after_ns: int, timeout_s: float) -> list[OrderEvent]:
    """The FILLED events on ``orders.events`` that happened after ``after_ns``."""
    settings = load_settings(env={"ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": KAFKA_FROM_HOST})

    def fills(msgs: list[Any]) -> list[OrderEvent]:
        events: list[OrderEvent] = decoded(msgs, OrderEvent)  # type: ignore[assignment]
        return [e for e in events if e.status is OrderStatus.FILLED and e.ts_event > after_ns]

    msgs = await read_until(settings, "orders.events", lambda m: bool(fills(m)), timeout_s)
    return fills(msgs)


def _pipeline_counts() -> dict[str, float]:
    """What each stage produced, from the compose Prometheus (for failure messages)."""
    query = "sum by (job, topic) (algostream_messages_out_total)"
    try:
        found = httpx.get(f"{PROMETHEUS}/api/v1/query", params={"query": query}, timeout=5)
        rows = found.json()["data"]["result"]
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        return {"prometheus query failed": str(exc)}  # type: ignore[dict-item]
    return {f"{r['metric']['job']}>{r['metric']['topic']}": float(r["value"][1]) for r in rows}


def _scrape_state() -> tuple[dict[str, str], list[str]]:
    targets = httpx.get(f"{PROMETHEUS}/api/v1/targets", timeout=5).json()["data"]
    health = {t["labels"]["job"]: t["health"] for t in targets["activeTargets"]}
    groups = httpx.get(f"{PROMETHEUS}/api/v1/rules", timeout=5).json()["data"]["groups"]
    return health, [g["name"] for g in groups]


async def test_compose_stack_runs_fills_scrapes_and_heals(stack: Stack) -> None:
    # 1. every long-running service is up and healthy (`up --wait` waited for that)
    rows = stack.containers()
    for service in LONG_RUNNING:
        assert rows[service]["State"] == "running", (service, rows.get(service))
        assert rows[service]["Health"] == "healthy", (service, stack.logs(service))
    assert rows["topics"]["ExitCode"] == 0, stack.logs("topics")
    assert "grafana" not in rows

    # 2. a paper fill reaches orders.events, read from the host through the published port
    fills = await _fills_after(0, timeout_s=120)
    assert fills, f"no fill in 120 s; records out by stage: {_pipeline_counts()}"
    assert all(f.venue == "PAPER" for f in fills), fills

    # 3. the compose Prometheus scrapes every target and has loaded the alert rules
    expected_groups = [
        g["name"] for g in yaml.safe_load((REPO / "config/alerts.yml").read_text())["groups"]
    ]
    jobs = {
        c["job_name"]
        for c in yaml.safe_load((REPO / "config/prometheus.yml").read_text())["scrape_configs"]
    }

    seen: list[tuple[dict[str, str], list[str]]] = []

    def all_up() -> bool:
        seen.append(_scrape_state())
        health, groups = seen[-1]
        return (
            set(health) == jobs
            and set(health.values()) == {"up"}
            and sorted(groups) == sorted(expected_groups)
        )

    assert poll_quietly(all_up, timeout_s=60), f"scrape targets and rule groups: {seen[-1]}"

    # 4. the market worker dies (SIGKILL to its process, as the OOM killer or a crash
    # would): it restarts on its own and fills continue. (`docker compose kill` is an
    # operator's stop: Docker marks the container manually stopped and no restart policy
    # brings it back, by design; so the test kills the process, not the container.)
    before = stack.inspect("worker-market")
    killed_at_ns = time.time_ns()
    os.kill(before["State"]["Pid"], signal.SIGKILL)

    def restarted() -> bool:
        now = stack.inspect("worker-market")
        return bool(
            now["State"]["Running"] and now["State"]["StartedAt"] != before["State"]["StartedAt"]
        )

    poll("the killed market worker running again", restarted, timeout_s=60)
    poll(
        "the restarted market worker healthy",
        lambda: stack.inspect("worker-market")["State"]["Health"]["Status"] == "healthy",
        timeout_s=120,
    )
    assert await _fills_after(killed_at_ns, timeout_s=180), (
        f"no fill after the restart; records out by stage: {_pipeline_counts()}\n"
        f"{stack.logs('worker-market', 60)}\n{stack.logs('worker-trading', 60)}"
    )


def test_compose_down_leaves_nothing_running(stack: Stack) -> None:
    stack.compose("down", "-v", "--remove-orphans", "--timeout", "20")
    label = f"label=com.docker.compose.project={PROJECT}"
    for kind in (["ps", "-a"], ["network", "ls"], ["volume", "ls"]):
        left = subprocess.run(
            ["docker", *kind, "-q", "--filter", label], capture_output=True, text=True, check=True
        ).stdout.split()
        assert left == [], (kind, left)
