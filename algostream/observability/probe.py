"""Is a running algostream process healthy? Read from its own ``/metrics``.

``python -m algostream.observability.probe`` (compose's healthcheck for every
long-running service: it imports only the standard library and prometheus_client's
parser, so it answers in a fraction of a second even on a busy machine; the port comes
from ``METRICS_PORT``) and ``algostream health --port 9402`` exit 0 when the process
answers on its metrics port, reaches its Kafka cluster (``algostream_kafka_reachable``),
runs its agents (``algostream_worker_up``) and its own ``/healthz`` has no problem (a
stalled stage, a stuck event loop: :mod:`algostream.observability.health`); else they
print each problem and exit 1, so the container is reported unhealthy instead of the
reason staying in a client's log.

>>> problems_in("algostream_kafka_reachable 0.0\\n")
['algostream_kafka_reachable is 0: the Kafka cluster has not answered yet']
>>> problems_in("algostream_kafka_reachable 1.0\\nalgostream_worker_up{agent=\\"market\\"} 1.0\\n")
[]
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

#: gauge -> what it means when a sample of it is 0
_MUST_BE_ONE = {
    "algostream_kafka_reachable": "the Kafka cluster has not answered yet",
    "algostream_worker_up": "the process is not running its agents",
}


def problems_in(exposition: str) -> list[str]:
    """The health problems a Prometheus text exposition shows (empty: healthy)."""
    problems = []
    for family in text_string_to_metric_families(exposition):
        meaning = _MUST_BE_ONE.get(family.name)
        if meaning is None:
            continue
        for sample in family.samples:
            if sample.value != 1:
                labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
                name = f"{sample.name}{{{labels}}}" if labels else sample.name
                problems.append(f"{name} is {sample.value:g}: {meaning}")
    return problems


def check(port: int, host: str = "127.0.0.1", timeout_s: float = 3.0) -> list[str]:
    """The problems of the process serving metrics on ``host:port`` (empty: healthy)."""
    url = f"http://{host}:{port}/metrics"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            body = response.read().decode()
    except (OSError, urllib.error.URLError) as exc:
        return [f"{url} did not answer: {exc}"]
    return problems_in(body) + _healthz_problems(f"http://{host}:{port}/healthz", timeout_s)


def _healthz_problems(url: str, timeout_s: float) -> list[str]:
    """The problems the process' ``/healthz`` reports (503 with a JSON body)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s):
            return []
    except urllib.error.HTTPError as exc:
        if exc.code != 503:
            return [f"{url} answered {exc.code}"]
        try:
            found = json.loads(exc.read().decode()).get("problems", {})
        except ValueError:
            return [f"{url} answered 503 with no readable body"]
        return [f"{name}: {problem}" for name, problem in sorted(found.items())]
    except (OSError, urllib.error.URLError) as exc:
        return [f"{url} did not answer: {exc}"]


def main() -> int:
    """Check the process whose metrics port is ``$METRICS_PORT``; print problems, 0/1."""
    problems = check(int(os.environ.get("METRICS_PORT", "9401")))
    for problem in problems:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
