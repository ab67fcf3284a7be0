"""Create and reconcile the catalog's topics on a cluster, idempotently.

``apply_catalog`` creates missing topics and reports drift (partitions, cleanup policy,
retention). It never deletes a topic. Drift that cannot lose data (more partitions,
config changes) is fixed only with ``fix=True``; fewer partitions than the cluster has is
reported and left alone (Kafka cannot shrink a topic without deleting it).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from algostream.config import KafkaConfig
from algostream.kafka.catalog import Catalog, TopicSpec
from algostream.kafka.clients import make_admin


@dataclass
class TopicState:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.drift


def _replication(spec: TopicSpec, cfg: KafkaConfig) -> int:
    return max(spec.replication_factor, cfg.replication_factor)


async def describe(cfg: KafkaConfig, names: list[str]) -> dict[str, TopicState]:
    """Partitions and catalog-managed configs of the existing topics among ``names``."""
    admin = make_admin(cfg)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in names if n in existing]
        if not wanted:
            return {}
        states = {
            t["topic"]: TopicState(t["topic"], len(t["partitions"]))
            for t in await admin.describe_topics(wanted)
        }
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                name = resource[3]
                for entry in resource[4]:
                    if entry[0] in ("cleanup.policy", "retention.ms"):
                        states[name].configs[entry[0]] = entry[1]
        return states
    finally:
        await admin.close()


async def wait_for_topics(cfg: KafkaConfig, names: list[str], timeout_s: float = 30.0) -> None:
    """Poll metadata until every topic in ``names`` is visible with its leaders."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        states = await describe(cfg, names)
        if len(states) == len(set(names)):
            return
        if asyncio.get_running_loop().time() > deadline:
            missing = sorted(set(names) - set(states))
            raise TimeoutError(f"topics not visible after {timeout_s:.0f}s: {missing}")
        await asyncio.sleep(0.05)  # polling interval, bounded by the deadline above


async def apply_catalog(
    catalog: Catalog, cfg: KafkaConfig, *, fix: bool = False, prefix: str | None = None
) -> ApplyReport:
    """Create missing topics; report (and with ``fix``, repair) drift. Never deletes."""
    prefix = cfg.topic_prefix if prefix is None else prefix
    names = {spec.full_name(prefix): spec for spec in catalog.values()}
    states = await describe(cfg, list(names))
    report = ApplyReport()
    admin = make_admin(cfg)
    await admin.start()
    try:
        missing = [
            NewTopic(name, spec.partitions, _replication(spec, cfg), topic_configs=spec.configs())
            for name, spec in names.items()
            if name not in states
        ]
        if missing:
            await admin.create_topics(missing)
            report.created = [t.name for t in missing]
            await wait_for_topics(cfg, report.created)
        for name, state in states.items():
            await _reconcile(admin, names[name], name, state, report, fix)
    finally:
        await admin.close()
    return report


async def _reconcile(
    admin: AIOKafkaAdminClient,
    spec: TopicSpec,
    name: str,
    state: TopicState,
    report: ApplyReport,
    fix: bool,
) -> None:
    problems: list[str] = []
    if state.partitions > spec.partitions:
        report.drift.append(
            f"{name}: has {state.partitions} partitions, catalog says "
            f"{spec.partitions}; Kafka cannot shrink a topic, left alone"
        )
    elif state.partitions < spec.partitions:
        problems.append(f"partitions {state.partitions} -> {spec.partitions}")
    wrong = {k: v for k, v in spec.configs().items() if state.configs.get(k) != v}
    problems += [f"{k} {state.configs.get(k)!r} -> {v!r}" for k, v in wrong.items()]
    if not problems:
        if name not in " ".join(report.drift):
            report.unchanged.append(name)
        return
    if not fix:
        report.drift.append(f"{name}: " + "; ".join(problems) + " (run with --fix to apply)")
        return
    if state.partitions < spec.partitions:
        await admin.create_partitions({name: NewPartitions(spec.partitions)})
    if wrong:  # AlterConfigs replaces the topic's dynamic configs: send every managed key
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, spec.configs())])
    report.fixed.append(f"{name}: " + "; ".join(problems))
