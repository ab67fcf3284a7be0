"""Run several ``algostream`` commands as child processes (the demo, tests, benchmarks).

Each child is a real OS process with its own log file; ``stop`` sends SIGTERM and then
SIGKILL after a grace period, ``kill`` is ``kill -9`` (fault tests). A child started with
``restart=True`` is started again by :meth:`Supervisor.supervise` when it has exited (a
hung worker exits by itself, :mod:`algostream.observability.health`) or when its
``health_url`` (a worker's ``/healthz``) has failed :attr:`Supervisor.unhealthy_limit`
checks in a row (it is killed first: a worker whose event loop is stuck cannot exit).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Child:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restart: bool = False
    health_url: str | None = None
    failed_checks: int = 0
    restarts: int = 0

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass
class Supervisor:
    """Start, watch and stop named child processes; logs go to ``log_dir/<name>.log``."""

    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    #: failed health checks in a row after which a child is killed and started again
    unhealthy_limit: int = 3

    def start(
        self,
        name: str,
        *args: str,
        env: dict[str, str] | None = None,
        restart: bool = False,
        health_url: str | None = None,
    ) -> Child:
        """Start ``algostream <args>`` as ``name`` (restarts it if it exists and died);
        ``restart``/``health_url``: see the module doc."""
        child_env = dict(os.environ) | self.env | (env or {})
        argv = [sys.executable, "-m", "algostream", *args]
        child = Child(name, argv, self.log_dir / f"{name}.log", child_env, None, restart)
        child.health_url = health_url
        self._spawn(child)
        self.children[name] = child
        return child

    def _spawn(self, child: Child) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with child.log.open("ab") as out:
            child.proc = subprocess.Popen(
                child.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=child.env,
                start_new_session=True,
            )

    def supervise(self) -> list[str]:
        """One round: start again each ``restart`` child that exited or failed its health
        check :attr:`unhealthy_limit` times in a row; returns the names started again."""
        restarted = []
        for name, child in self.children.items():
            if not child.restart:
                continue
            if child.alive and not self._unhealthy(child):
                continue
            if child.alive:
                self.kill(name)
            child.failed_checks = 0
            child.restarts += 1
            self._spawn(child)
            restarted.append(name)
        return restarted

    def _unhealthy(self, child: Child) -> bool:
        if child.health_url is None:
            return False
        try:
            with urllib.request.urlopen(child.health_url, timeout=2):
                child.failed_checks = 0
        except urllib.error.HTTPError:  # it answered: 503, unhealthy
            child.failed_checks += 1
        except (TimeoutError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            if not isinstance(reason, TimeoutError):
                return False  # not listening (yet, or any more): its exit is the signal
            child.failed_checks += 1  # listening but not answering (stopped, swapping)
        return child.failed_checks >= self.unhealthy_limit

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        child = self.children[name]
        if child.alive and child.proc is not None:
            os.killpg(child.proc.pid, sig)
            child.proc.wait(timeout=30)

    def signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to ``name``'s process group without waiting (``SIGSTOP`` pauses
        it, ``SIGCONT`` resumes it)."""
        child = self.children[name]
        if child.alive and child.proc is not None:
            os.killpg(child.proc.pid, sig)

    def stop(self, name: str, grace_s: float = 15.0) -> None:
        child = self.children[name]
        if not child.alive or child.proc is None:
            return
        os.killpg(child.proc.pid, signal.SIGTERM)
        try:
            child.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait(timeout=10)

    def stop_all(self) -> None:
        for name in reversed(list(self.children)):
            self.stop(name)

    def dead(self) -> list[str]:
        return [n for n, c in self.children.items() if not c.alive]

    def tail(self, name: str, lines: int = 40) -> str:
        from algostream.kafka.local_broker import tail

        return tail(self.children[name].log, lines)

    def wait_all_alive(self, seconds: float) -> list[str]:
        """Watch for ``seconds``; return the names that died meanwhile."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.dead():
                return self.dead()
            time.sleep(0.5)
        return self.dead()
