"""Provisioning for a multi-broker cluster: replication factor and min.insync.replicas
overrides (``topics apply --replication-factor 3 --min-insync-replicas 2``), without a broker.
"""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from algostream.config import KafkaConfig
from algostream.kafka import provision
from algostream.kafka.catalog import load_catalog
from algostream.kafka.provision import (
    ApplyReport,
    TopicState,
    _reconcile,
    _replication,
    check_durability,
    wanted_configs,
)


def test_config_replication_factor_overrides_the_catalog_default() -> None:
    cat = load_catalog()
    assert all(spec.replication_factor == 1 for spec in cat.values())  # the local broker
    cluster = KafkaConfig(replication_factor=3)
    assert {_replication(spec, cluster) for spec in cat.values()} == {3}
    assert {_replication(spec, KafkaConfig()) for spec in cat.values()} == {1}


def test_min_insync_replicas_is_a_managed_topic_config_only_when_given() -> None:
    spec = load_catalog()["md.book"]
    assert "min.insync.replicas" not in wanted_configs(spec)
    assert wanted_configs(spec, 2) == spec.configs() | {"min.insync.replicas": "2"}


def test_min_insync_replicas_above_the_replication_factor_is_refused() -> None:
    cat = load_catalog()
    check_durability(cat, KafkaConfig(replication_factor=3), 2)
    check_durability(cat, KafkaConfig(), None)
    with pytest.raises(ValueError, match="NotEnoughReplicas"):
        check_durability(cat, KafkaConfig(replication_factor=1), 2)


class AlterConfigsResponse:
    def __init__(self, resources: list[tuple[int, str | None, int, str]]) -> None:
        self.resources = resources  # (error_code, error_message, resource_type, name)


class FakeAdmin:
    def __init__(self, error: tuple[int, str] | None = None) -> None:
        self.altered: list[Any] = []
        self.error = error

    async def alter_configs(self, resources: list[Any]) -> list[AlterConfigsResponse]:
        self.altered += resources
        code, message = self.error or (0, None)
        return [AlterConfigsResponse([(code, message, 2, r.name) for r in resources])]

    async def create_partitions(self, _: Any) -> None:
        raise AssertionError("not expected")


async def test_too_few_replicas_is_drift_and_never_fixed() -> None:
    spec = load_catalog()["md.book"]
    state = TopicState("md.book", spec.partitions, dict(spec.configs()), replication=1)
    report, admin = ApplyReport(), FakeAdmin()
    await _reconcile(admin, spec, "md.book", state, report, True, spec.configs(), 3)  # type: ignore[arg-type]
    assert not report.ok and "replication factor 1, wanted 3" in report.drift[0]
    assert admin.altered == [] and report.fixed == []


async def test_min_insync_replicas_drift_is_fixed_with_every_managed_key() -> None:
    spec = load_catalog()["md.book"]
    state = TopicState(
        "md.book", spec.partitions, spec.configs() | {"min.insync.replicas": "1"}, replication=3
    )
    wanted = wanted_configs(spec, 2)
    report, admin = ApplyReport(), FakeAdmin()
    await _reconcile(admin, spec, "md.book", state, report, False, wanted, 3)  # type: ignore[arg-type]
    assert "min.insync.replicas '1' -> '2'" in report.drift[0]
    report = ApplyReport()
    await _reconcile(admin, spec, "md.book", state, report, True, wanted, 3)  # type: ignore[arg-type]
    assert report.ok and report.fixed
    assert admin.altered[0].configs == wanted


async def test_a_fix_without_the_flag_keeps_the_topics_min_insync_replicas() -> None:
    spec = load_catalog()["md.book"]
    state = TopicState(
        "md.book",
        spec.partitions,
        {"cleanup.policy": "delete", "retention.ms": "1", "min.insync.replicas": "2"},
        replication=3,
    )
    admin = FakeAdmin()
    await _reconcile(admin, spec, "md.book", state, ApplyReport(), True, spec.configs(), 3)  # type: ignore[arg-type]
    assert admin.altered[0].configs == spec.configs() | {"min.insync.replicas": "2"}


def test_topics_apply_flags_reach_the_provisioner(monkeypatch: pytest.MonkeyPatch) -> None:
    from algostream.cli import app

    seen: dict[str, Any] = {}

    async def fake_apply(catalog: Any, cfg: KafkaConfig, **kwargs: Any) -> ApplyReport:
        seen.update(cfg=cfg, **kwargs)
        return ApplyReport(created=["x"])

    monkeypatch.setattr(provision, "apply_catalog", fake_apply)
    runner = CliRunner()
    args = ["topics", "apply", "--replication-factor", "3", "--min-insync-replicas", "2"]
    result = runner.invoke(app, args, env={})
    assert result.exit_code == 0, result.output
    assert seen["cfg"].replication_factor == 3 and seen["min_insync_replicas"] == 2

    result = runner.invoke(app, ["topics", "apply", "--min-insync-replicas", "2"], env={})
    assert result.exit_code == 2 and "NotEnoughReplicas" in result.output


async def test_a_refused_config_change_is_an_error_not_a_fix() -> None:
    # the broker answers AlterConfigs per resource; an error code there must not be
    # reported as fixed (aiokafka returns it, it does not raise)
    spec = load_catalog()["md.book"]
    state = TopicState("md.book", spec.partitions, {"cleanup.policy": "compact"}, replication=1)
    report = ApplyReport()
    admin = FakeAdmin(error=(40, "Invalid value compact,delete"))  # INVALID_CONFIG
    with pytest.raises(Exception, match=r"could not alter configs of md\.book: Invalid value"):
        await _reconcile(admin, spec, "md.book", state, report, True, spec.configs(), 1)  # type: ignore[arg-type]
    assert report.fixed == []
