"""Fixtures of the observability tests: external tools (promtool, prometheus, docker compose).

A missing tool skips its tests with the reason, except where the environment says the tool
is required (``CI`` or ``ALGOSTREAM_REQUIRE_PROMTOOL`` for the Prometheus tools,
``ALGOSTREAM_REQUIRE_DOCKER_COMPOSE`` for docker compose): then the tests fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
_TRUE = {"1", "true", "yes", "on"}


def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def prometheus_tools_required() -> bool:
    return _env_true("CI") or _env_true("ALGOSTREAM_REQUIRE_PROMTOOL")


def _missing(what: str, required: bool, hint: str) -> None:
    message = f"{what} is not installed ({hint})"
    if required:
        pytest.fail(f"{message}; it is required here (CI / ALGOSTREAM_REQUIRE_* set)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        _missing("promtool", prometheus_tools_required(), "apt-get install prometheus")
    assert path is not None
    return path


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    path = shutil.which("prometheus")
    if path is None:
        _missing("prometheus", prometheus_tools_required(), "apt-get install prometheus")
    assert path is not None
    return path


def _compose_works() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        done = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def docker_compose() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``docker compose <args>`` in the repo with a given environment."""
    if not _compose_works():
        _missing(
            "docker compose (the CLI plugin)",
            _env_true("ALGOSTREAM_REQUIRE_DOCKER_COMPOSE"),
            "install the docker CLI and its compose plugin",
        )

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "compose", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
