"""A real single-node Apache Kafka broker (KRaft), fetched from Maven Central.

``LocalBroker(root).start()`` runs, once, ``mvn dependency:copy-dependencies`` on the bundled
``broker-pom.xml`` into ``<root>/libs`` (cached: later starts take seconds), formats KRaft
storage with ``kafka.tools.StorageTool`` and starts ``kafka.Kafka`` as broker+controller on
127.0.0.1 with a small heap. It waits until the broker answers a metadata request, and keeps
its pid and log in ``<root>``. Every failure is a :class:`BrokerError` with the log tail.

>>> broker = LocalBroker(Path(".kafka"))          # doctest: +SKIP
>>> broker.start().bootstrap                       # doctest: +SKIP
'127.0.0.1:9092'
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from algostream.kafka.errors import BrokerError

POM = Path(__file__).with_name("broker-pom.xml")
KAFKA_VERSION = "3.9.1"
DEFAULT_PORT = 9092
DEFAULT_HEAP = "-Xms512m -Xmx1g"
#: Kafka's own GC settings (kafka-run-class.sh): G1 with a 20 ms pause goal. The serial
#: collector with C1 only (fast start) paused the broker ~20 ms per young collection, every
#: few seconds under the pipeline benchmark: straight into every stage's p99. (These were
#: reverted once because two CI runs with them failed in the scale-out test; the cause was
#: in the workers, not the broker: bench/BENCHMARKS.md, profiling rows 11 and 13.)
JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
)


def new_cluster_id() -> str:
    """A KRaft cluster id: a random UUID, base64url, never starting with ``-`` (Kafka's own
    ``Uuid.randomUuid`` rule): the storage tool's argument parser takes ``-...`` for an
    option ("argument --cluster-id/-t: expected one argument"), 1 format in 64 before."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    log: Path


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie child is not alive
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def _metadata_ok(bootstrap: str, **client: Any) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # connection refusals are expected while starting
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **client)
    try:
        await admin.start()
        await admin.describe_cluster()
        return True
    except Exception:
        return False
    finally:
        await admin.close()
        quiet.setLevel(level)


def answers_metadata(bootstrap: str, **client: Any) -> bool:
    """True when a broker at ``bootstrap`` answers a metadata request (``client``: more
    aiokafka settings, e.g. SASL)."""
    return asyncio.run(_metadata_ok(bootstrap, **client))


class LocalBroker:
    """Fetch, format, start, stop and inspect a local KRaft broker under ``root``."""

    def __init__(
        self,
        root: Path,
        port: int = DEFAULT_PORT,
        heap: str = DEFAULT_HEAP,
        *,
        libs: Path | None = None,
        overrides: Mapping[str, str] | None = None,
        cluster_id: str | None = None,
        client: Mapping[str, Any] | None = None,
    ) -> None:
        """``libs`` (default ``root/libs``) lets a second broker reuse fetched jars while
        its data, config, pid and log stay under its own ``root``. ``overrides`` replace
        or add ``server.properties`` keys (SASL listeners, a node of a cluster: node.id,
        controller.quorum.voters), ``cluster_id`` formats the storage for a cluster of
        several nodes, ``client`` are the aiokafka settings that check it answers."""
        self.root = root.resolve()
        self.port = port
        self.controller_port = port + 1
        self.heap = heap
        self.libs = (libs or self.root / "libs").resolve()
        self.data = self.root / f"data-{port}"
        self.log = self.root / f"broker-{port}.log"
        self.pid_file = self.root / f"broker-{port}.pid"
        self.props = self.root / f"server-{port}.properties"
        self.overrides = dict(overrides or {})
        self.cluster_id = cluster_id
        self.client = dict(client or {})

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ fetch
    def fetch(self) -> None:
        """Copy the broker jars from Maven Central into ``libs/`` (no-op when cached)."""
        marker = self.libs / f".kafka-{KAFKA_VERSION}"
        if marker.exists():
            return
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is not on PATH; install Maven 3 to fetch the broker")
        self._require_java()
        self.root.mkdir(parents=True, exist_ok=True)
        fetch_log = self.root / "fetch.log"
        with fetch_log.open("w") as out:
            rc = subprocess.call(
                [
                    mvn,
                    "-B",
                    "-q",
                    "-f",
                    str(POM),
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={self.libs}",
                    "-DincludeScope=runtime",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        if rc != 0:
            raise BrokerError(
                f"mvn could not fetch Kafka {KAFKA_VERSION} (exit {rc}):\n" + tail(fetch_log)
            )
        marker.touch()

    @staticmethod
    def _require_java() -> str:
        java = shutil.which("java")
        if java is None:
            raise BrokerError("no JDK: 'java' is not on PATH; install Java 17+ (e.g. openjdk-17)")
        return java

    # ------------------------------------------------------------------ lifecycle
    def status(self) -> BrokerStatus:
        pid = self._pid()
        running = pid is not None and _pid_alive(pid)
        return BrokerStatus(running, pid if running else None, self.bootstrap, self.log)

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout_s: float = 90.0, *, wait: bool = True) -> BrokerStatus:
        """Start the broker unless ours is already running; wait until it answers (with
        ``wait=False`` not: a node of a cluster answers once a quorum of nodes runs)."""
        current = self.status()
        if current.running:
            if wait:
                self._wait_ready(current.pid, timeout_s)
            return current
        for port in (self.port, self.controller_port):
            if not _port_free(port):
                raise BrokerError(
                    f"port {port} on 127.0.0.1 is already in use by another process; stop it or "
                    f"pick another port (ALGOSTREAM_BROKER_PORT) and set KAFKA_BOOTSTRAP"
                )
        self.fetch()
        java = self._require_java()
        self._write_config()
        self._format(java)
        env = dict(os.environ, KAFKA_HEAP_OPTS=self.heap)
        cmd = [
            java,
            *self.heap.split(),
            *JVM_OPTS,
            "-Djava.awt.headless=true",
            f"-Dlog4j.configuration=file:{self._log4j()}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(self.props),
        ]
        with self.log.open("ab") as out:
            proc = subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                cwd=self.root,
            )
        self.pid_file.write_text(str(proc.pid))
        if wait:
            self._wait_ready(proc.pid, timeout_s)
        return self.status()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Wait until the running broker answers a metadata request."""
        self._wait_ready(self._pid(), timeout_s)

    def _wait_ready(self, pid: int | None, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if pid is not None and not _pid_alive(pid):
                raise BrokerError(f"the broker exited during start-up:\n{tail(self.log)}")
            if answers_metadata(self.bootstrap, **self.client):
                return
            time.sleep(0.25)  # polling interval while waiting on a deadline
        raise BrokerError(f"the broker did not answer within {timeout_s:.0f}s:\n{tail(self.log)}")

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``). False if not running."""
        return self._signal(signal.SIGTERM, timeout_s)

    def kill(self, timeout_s: float = 30.0) -> bool:
        """``kill -9`` the broker (fault tests: no clean shutdown, logs recovered at the next
        start). False if not running."""
        return self._signal(signal.SIGKILL, timeout_s)

    def _signal(self, sig: signal.Signals, timeout_s: float) -> bool:
        """Send ``sig`` to the broker's process group and wait up to ``timeout_s`` for it to
        exit; one still running then is SIGKILLed. False if no broker of ours was running."""
        pid = self._pid()
        if pid is None or not _pid_alive(pid):
            self.pid_file.unlink(missing_ok=True)
            return False
        os.killpg(pid, sig)
        deadline = time.monotonic() + timeout_s
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)  # polling interval while waiting on a deadline
        if _pid_alive(pid):
            os.killpg(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    # ------------------------------------------------------------------ files
    def _write_config(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},"
            f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
            "log.segment.bytes": "67108864",
        } | self.overrides
        self.props.write_text("".join(f"{k}={v}\n" for k, v in props.items()))

    def _log4j(self) -> Path:
        path = self.root / "log4j.properties"
        path.write_text(
            "\n".join(
                [
                    "log4j.rootLogger=WARN, stdout",
                    "log4j.appender.stdout=org.apache.log4j.ConsoleAppender",
                    "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout",
                    "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n",
                    "log4j.logger.kafka.server.KafkaServer=INFO",
                    "log4j.logger.kafka.server.KafkaRaftServer=INFO",
                    "",
                ]
            )
        )
        return path

    def _format(self, java: str) -> None:
        if (self.data / "meta.properties").exists():
            return
        cluster_id = self.cluster_id or new_cluster_id()
        result = subprocess.run(
            [
                java,
                "-Xmx256m",
                f"-Dlog4j.configuration=file:{self._log4j()}",
                "-cp",
                f"{self.libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(self.props),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise BrokerError(f"formatting KRaft storage failed:\n{result.stdout}{result.stderr}")
