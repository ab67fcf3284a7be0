"""Check PromQL against a real, throwaway Prometheus (for tests of dashboards and alerts).

:func:`start_prometheus` runs the ``prometheus`` binary on a free loopback port with a
temporary config scraping the given targets every second; :meth:`PromServer.wait_for_data`
polls ``/api/v1/query`` for each expression until every one returns data, or fails with
the expressions that did not (a parse error fails at once: it cannot fix itself).

>>> from algostream.observability.metrics import serve_metrics
>>> server = serve_metrics(0, addr="127.0.0.1")  # doctest: +SKIP
>>> with start_prometheus([f"127.0.0.1:{server.port}"]) as prom:  # doctest: +SKIP
...     prom.wait_for_data(["algostream_worker_up"], timeout_s=60)
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from algostream.observability.errors import PromCheckError

__all__ = [
    "GRAFANA_DEFAULTS",
    "PromServer",
    "expand_grafana_expr",
    "find_prometheus",
    "find_promtool",
    "free_port",
    "start_prometheus",
]

#: Values substituted for Grafana's built-in and the dashboards' template variables.
GRAFANA_DEFAULTS: Mapping[str, str] = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "5m",
}
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def find_prometheus() -> str | None:
    """Path of the ``prometheus`` binary (``$PATH``), or None."""
    return shutil.which("prometheus")


def find_promtool() -> str | None:
    """Path of ``promtool`` (``$PATH``), or None."""
    return shutil.which("promtool")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def expand_grafana_expr(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables (``$__rate_interval``, ``$instrument``, ``${account}``).

    Built-ins come from :data:`GRAFANA_DEFAULTS`; any other variable becomes ``.*`` (the
    dashboards use template variables only inside ``=~`` matchers) unless given.
    """
    values = {**GRAFANA_DEFAULTS, **(variables or {})}

    def sub(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, ".*")

    return _VAR.sub(sub, expr)


def _config_text(targets: Sequence[str], rule_files: Sequence[Path], interval: str) -> str:
    """Prometheus config as JSON (which is YAML): no quoting pitfalls in paths or targets."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(Path(p).resolve()) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": "promcheck",
                "scrape_interval": interval,
                "static_configs": [{"targets": list(targets)}],
            }
        ],
    }
    return json.dumps(config, indent=2) + "\n"


@dataclass
class PromServer:
    """A running throwaway Prometheus; use as a context manager or call :meth:`close`."""

    url: str
    process: subprocess.Popen[bytes]
    workdir: Path
    log_path: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    def query(self, expr: str) -> dict[str, Any]:
        """The ``data`` of an instant query; raises :class:`PromCheckError` on an API error."""
        resp = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        body: dict[str, Any] = resp.json()
        if body.get("status") != "success":
            raise PromCheckError(f"query {expr!r}: {body.get('errorType')}: {body.get('error')}")
        data: dict[str, Any] = body["data"]
        return data

    def wait_for_data(
        self, exprs: Iterable[str], *, timeout_s: float = 60.0, poll_s: float = 0.5
    ) -> dict[str, dict[str, Any]]:
        """Poll until every expression returns a non-empty result; returns each ``data``.

        Raises :class:`PromCheckError` naming each expression that is invalid or still
        empty at the deadline.
        """
        pending = list(dict.fromkeys(exprs))
        results: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + timeout_s
        while True:
            for expr in list(pending):
                data = self.query(expr)  # an invalid expression raises here, at once
                if _has_data(data):
                    results[expr] = data
                    pending.remove(expr)
            if not pending:
                return results
            if time.monotonic() >= deadline:
                raise PromCheckError(
                    f"no data after {timeout_s:.0f}s for {len(pending)} expression(s): "
                    + "; ".join(repr(e) for e in pending)
                )
            self._check_alive()
            time.sleep(poll_s)  # polling an external process with a deadline

    def _check_alive(self) -> None:
        if self.process.poll() is not None:
            raise PromCheckError(
                f"prometheus exited with {self.process.returncode}: {self.log_tail()}"
            )

    def log_tail(self, chars: int = 2000) -> str:
        """The end of Prometheus' log (for error messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def close(self) -> None:
        """Stop Prometheus and remove its temporary directory."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> PromServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _has_data(data: Mapping[str, Any]) -> bool:
    if data.get("resultType") in ("vector", "matrix"):
        return bool(data.get("result"))
    return data.get("result") is not None


def _wait_ready(server: PromServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        server._check_alive()
        try:
            if httpx.get(f"{server.url}/-/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)  # polling an external process with a deadline
    raise PromCheckError(f"prometheus not ready after {timeout_s:.0f}s: {server.log_tail()}")


def start_prometheus(
    targets: Sequence[str],
    *,
    rule_files: Sequence[str | Path] = (),
    scrape_interval: str = "1s",
    binary: str | None = None,
    startup_timeout_s: float = 30.0,
) -> PromServer:
    """Start Prometheus on a free 127.0.0.1 port scraping ``targets`` (``host:port``).

    Storage and config live in a temporary directory removed by :meth:`PromServer.close`.
    Raises :class:`PromCheckError` if the binary is missing or does not become ready.
    """
    exe = binary or find_prometheus()
    if exe is None:
        raise PromCheckError("prometheus binary not found on PATH (apt-get install prometheus)")
    tmp = tempfile.TemporaryDirectory(prefix="algostream-prom-")
    workdir = Path(tmp.name)
    config = workdir / "prometheus.yml"
    config.write_text(_config_text(targets, [Path(p) for p in rule_files], scrape_interval))
    port = free_port()
    log_path = workdir / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                exe,
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = PromServer(f"http://127.0.0.1:{port}", process, workdir, log_path, tmp)
    try:
        _wait_ready(server, startup_timeout_s)
    except BaseException:
        server.close()
        raise
    return server
