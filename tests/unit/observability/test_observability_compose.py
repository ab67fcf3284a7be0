"""docker-compose.yml (and the Redpanda override) resolve with `docker compose config`,
refuse to resolve without a Grafana password, and agree with config/prometheus.yml."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

Compose = Callable[..., subprocess.CompletedProcess[str]]
BASE = ("-f", "docker-compose.yml")
REDPANDA = (*BASE, "-f", "docker-compose.redpanda.yml")
APP_SERVICES = {"topics", "simulator", "ingestor", "worker-market", "worker-trading"}


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "GRAFANA_ADMIN_PASSWORD"}
    env.pop("COMPOSE_FILE", None)
    return {**env, **extra}


def _config(compose: Compose, files: tuple[str, ...]) -> dict[str, Any]:
    done = compose(
        *files, "config", "--format", "json", env=_env(GRAFANA_ADMIN_PASSWORD="test-only-password")
    )
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def test_compose_config_resolves_every_service(docker_compose: Compose) -> None:
    services = _config(docker_compose, BASE)["services"]
    assert set(services) == {"kafka", "prometheus", "grafana", *APP_SERVICES}
    assert services["kafka"]["image"] == "apache/kafka:3.9.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["topics"]["command"] == ["topics", "apply"]
    assert services["simulator"]["command"][0] == "sim"
    assert services["ingestor"]["command"] == ["ingest"]
    for role in ("market", "trading"):  # the colocated layout (workers.layout)
        assert services[f"worker-{role}"]["command"][:2] == ["worker", role]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092", name
    for name in APP_SERVICES - {"topics"}:
        assert "healthcheck" in services[name], name
    assert services["topics"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    grafana = services["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "test-only-password"
    targets = {v["target"] for v in grafana["volumes"]}
    assert {"/etc/grafana/provisioning", "/etc/grafana/dashboards"} <= targets


def test_redpanda_override_replaces_kafka_only(docker_compose: Compose) -> None:
    base = _config(docker_compose, BASE)["services"]
    services = _config(docker_compose, REDPANDA)["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("redpandadata/redpanda:")
    assert not any(k.startswith("KAFKA_") for k in kafka.get("environment") or {})
    assert [v["target"] for v in kafka["volumes"]] == ["/var/lib/redpanda/data"]
    assert (
        "--advertise-kafka-addr=PLAINTEXT://kafka:9092,EXTERNAL://127.0.0.1:29092"
        in (kafka["command"])
    )
    for name in set(base) - {"kafka"}:
        assert services[name] == base[name], f"{name} changed by the override"


@pytest.mark.parametrize("files", [BASE, REDPANDA], ids=["kafka", "redpanda"])
def test_compose_refuses_to_run_without_a_grafana_password(
    docker_compose: Compose, files: tuple[str, ...]
) -> None:
    done = docker_compose(*files, "config", env=_env())
    assert done.returncode != 0
    assert "GRAFANA_ADMIN_PASSWORD" in done.stderr
    empty = docker_compose(*files, "config", env=_env(GRAFANA_ADMIN_PASSWORD=""))
    assert empty.returncode != 0


def test_prometheus_targets_are_compose_services_on_their_metrics_ports(
    docker_compose: Compose, repo: Path
) -> None:
    services = _config(docker_compose, BASE)["services"]
    config = yaml.safe_load((repo / "config" / "prometheus.yml").read_text())
    for job in config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":
                    continue
                assert host in services, f"job {job['job_name']}: no service {host}"
                assert port in _metrics_ports(services[host]), f"{target}: not its metrics port"


def _metrics_ports(service: dict[str, Any]) -> set[str]:
    env = service.get("environment") or {}
    ports = {
        str(env[k]) for k in ("METRICS_PORT", "ALGOSTREAM__OBSERVABILITY__METRICS_PORT") if k in env
    }
    command = service.get("command") or []
    if "--metrics-port" in command:
        ports.add(command[command.index("--metrics-port") + 1])
    return ports


def test_published_ports_bind_loopback_unless_told(docker_compose: Compose) -> None:
    """Kafka, the simulator, Prometheus and Grafana are reachable from this host only by
    default (they show orders, positions and P&L); PUBLISH_ADDR widens that on purpose."""

    def host_ips(env: dict[str, str]) -> set[str]:
        done = docker_compose(*BASE, "config", "--format", "json", env=env)
        assert done.returncode == 0, done.stderr
        services = json.loads(done.stdout)["services"]
        return {p["host_ip"] for s in services.values() for p in s.get("ports", [])}

    password = {"GRAFANA_ADMIN_PASSWORD": "test-only-password"}
    assert host_ips(_env(**password)) == {"127.0.0.1"}
    assert host_ips(_env(**password, PUBLISH_ADDR="0.0.0.0")) == {"0.0.0.0"}


def test_shadow_and_notifier_are_opt_in_profiles(docker_compose: Compose) -> None:
    """Not started by a plain `up` (they need config first); with their profiles they run
    the CLI commands, after the workers they read are healthy."""
    both = (*BASE, "--profile", "shadow", "--profile", "notify")
    services = _config(docker_compose, both)["services"]
    assert services["shadow"]["command"] == ["shadow", "run", "--metrics-port", "9408"]
    assert services["notifier"]["command"] == ["notify"]
    assert services["shadow"]["depends_on"]["worker-market"]["condition"] == "service_healthy"
    assert services["notifier"]["depends_on"]["worker-trading"]["condition"] == "service_healthy"
    for name in ("shadow", "notifier"):
        env = services[name]["environment"]
        assert env["ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS"] == "kafka:9092", name
