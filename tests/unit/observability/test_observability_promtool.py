"""config/prometheus.yml and config/alerts.yml are valid, and the alert unit tests pass."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from algostream.observability import metrics

ALERTS = {
    "FeedStale", "SequenceGaps", "ConsumerLagHigh", "DeadLettersGrowing", "WorkerDown",
    "CircuitBreakerTripped", "LossNearThreshold", "BookUpdateSlow", "FeatureComputeSlow",
    "RiskCheckSlow", "OrderSubmitSlow", "StageStalled",
}  # fmt: skip


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_prometheus_config_is_valid(promtool: str, repo: Path) -> None:
    done = _promtool(promtool, "check", "config", "prometheus.yml", cwd=repo / "config")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 rule files found" in done.stdout


def test_alert_rules_are_valid(promtool: str, repo: Path) -> None:
    done = _promtool(promtool, "check", "rules", "alerts.yml", cwd=repo / "config")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(ALERTS)} rules found" in done.stdout


def test_alert_unit_tests_pass(promtool: str, repo: Path) -> None:
    done = _promtool(promtool, "test", "rules", "alerts_test.yml", cwd=repo / "config")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_a_wrong_expectation_makes_promtool_fail(promtool: str, repo: Path, tmp_path: Path) -> None:
    """The harness can fail: expecting FeedStale while it is still pending is an error."""
    shutil.copy(repo / "config" / "alerts.yml", tmp_path / "alerts.yml")
    suite = yaml.safe_load((repo / "config" / "alerts_test.yml").read_text())
    feed = next(t for t in suite["tests"] if t["alert_rule_test"][0]["alertname"] == "FeedStale")
    pending, firing = feed["alert_rule_test"][:2]
    pending["exp_alerts"] = firing["exp_alerts"]
    suite["tests"] = [feed]
    (tmp_path / "wrong_test.yml").write_text(yaml.safe_dump(suite))
    done = _promtool(promtool, "test", "rules", "wrong_test.yml", cwd=tmp_path)
    assert done.returncode != 0
    assert "FeedStale" in done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing(repo: Path) -> None:
    rules = yaml.safe_load((repo / "config" / "alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert names == ALERTS
    suite = yaml.safe_load((repo / "config" / "alerts_test.yml").read_text())
    cases = [c for t in suite["tests"] for c in t["alert_rule_test"]]
    fired = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    assert fired == ALERTS, f"never tested firing: {ALERTS - fired}"
    assert quiet == ALERTS, f"never tested quiet: {ALERTS - quiet}"


def test_alert_rules_use_only_metrics_the_registry_exposes(repo: Path) -> None:
    rules = yaml.safe_load((repo / "config" / "alerts.yml").read_text())
    exposed = _exposed_series_names()
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in re.findall(r"\balgostream_[a-z0-9_]+", rule["expr"]):
                assert name in exposed, f"{rule['alert']}: unknown metric {name}"


def test_scrape_jobs_cover_every_process_with_a_distinct_target(repo: Path) -> None:
    config = yaml.safe_load((repo / "config" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    }
    assert {"ingestor", "market", "trading", "simulator"} <= set(targets)
    app_targets = [t for job, t in targets.items() if job != "prometheus"]
    assert len(set(app_targets)) == len(app_targets), "a process scraped twice double-counts"


def _exposed_series_names() -> set[str]:
    names: set[str] = set()
    for family in metrics.REGISTRY.collect():
        names.add(family.name)
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
        names.update(family.name + s for s in suffixes.get(family.type, ()))
    return names
