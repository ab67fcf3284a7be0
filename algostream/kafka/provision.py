"""Create and reconcile the catalog's topics on a cluster, idempotently.

``apply_catalog`` creates missing topics and reports drift (partitions, cleanup policy,
retention, and on a cluster replication factor and ``min.insync.replicas``). It never
deletes a topic. Drift that cannot lose data (more partitions,
config changes) is fixed only with ``fix=True``; fewer partitions than the cluster has is
reported and left alone (Kafka cannot shrink a topic without deleting it), and so is a
replication factor below the wanted one (raising it moves replicas between brokers:
``kafka-reassign-partitions.sh``, an operator's decision).

The replication factor of a topic is ``max(catalog, kafka.replication_factor)``, so one
config key (or ``topics apply --replication-factor``) gives every topic 3 replicas on a
cluster while ``topics/topics.toml`` stays at 1 for the local single broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import for_code

from algostream.config import KafkaConfig
from algostream.kafka.catalog import Catalog, TopicSpec
from algostream.kafka.clients import make_admin


@dataclass
class TopicState:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    #: the fewest replicas any partition of the topic has
    replication: int = 1


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


def wanted_configs(spec: TopicSpec, min_insync_replicas: int | None = None) -> dict[str, str]:
    """The topic configs apply manages: the catalog's, plus ``min.insync.replicas`` if given."""
    out = spec.configs()
    if min_insync_replicas is not None:
        out["min.insync.replicas"] = str(min_insync_replicas)
    return out


def check_durability(catalog: Catalog, cfg: KafkaConfig, min_insync_replicas: int | None) -> None:
    """Refuse settings under which no ``acks=all`` write to some topic could succeed."""
    if min_insync_replicas is None:
        return
    if min_insync_replicas < 1:
        raise ValueError(f"min.insync.replicas = {min_insync_replicas}: expected >= 1")
    for spec in catalog.values():
        if min_insync_replicas > _replication(spec, cfg):
            raise ValueError(
                f"min.insync.replicas = {min_insync_replicas} > replication factor "
                f"{_replication(spec, cfg)} of {spec.name}: every acks=all write would fail "
                "(NotEnoughReplicas); raise kafka.replication_factor"
            )


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
            t["topic"]: TopicState(
                t["topic"],
                len(t["partitions"]),
                replication=min((len(p["replicas"]) for p in t["partitions"]), default=1),
            )
            for t in await admin.describe_topics(wanted)
        }
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in wanted]
        for response in await admin.describe_configs(resources):
            for resource in response.resources:
                name = resource[3]
                for entry in resource[4]:
                    if entry[0] in ("cleanup.policy", "retention.ms", "min.insync.replicas"):
                        states[name].configs[entry[0]] = entry[1]
        return states
    finally:
        await admin.close()


async def _poll(
    cfg: KafkaConfig,
    names: list[str],
    behind: Callable[[dict[str, TopicState]], list[str]],
    what: str,
    timeout_s: float,
) -> None:
    """Describe ``names`` until ``behind(states)`` is empty; TimeoutError naming the rest."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        late = behind(await describe(cfg, names))
        if not late:
            return
        if loop.time() > deadline:
            raise TimeoutError(f"{what} not visible after {timeout_s:.0f}s: {late}")
        await asyncio.sleep(0.05)  # polling interval, bounded by the deadline above


async def wait_for_topics(cfg: KafkaConfig, names: list[str], timeout_s: float = 30.0) -> None:
    """Poll metadata until every topic in ``names`` is visible with its leaders."""
    await _poll(cfg, names, lambda states: sorted(set(names) - set(states)), "topics", timeout_s)


async def apply_catalog(
    catalog: Catalog,
    cfg: KafkaConfig,
    *,
    fix: bool = False,
    prefix: str | None = None,
    min_insync_replicas: int | None = None,
) -> ApplyReport:
    """Create missing topics; report (and with ``fix``, repair) drift. Never deletes.

    ``min_insync_replicas`` (for a cluster: 2 with replication factor 3) is set on every
    topic and checked as drift; ``None`` leaves it to the brokers' default.
    """
    check_durability(catalog, cfg, min_insync_replicas)
    prefix = cfg.topic_prefix if prefix is None else prefix
    names = {spec.full_name(prefix): spec for spec in catalog.values()}
    states = await describe(cfg, list(names))
    report = ApplyReport()
    admin = make_admin(cfg)
    await admin.start()
    try:
        missing = [
            NewTopic(
                name,
                spec.partitions,
                _replication(spec, cfg),
                topic_configs=wanted_configs(spec, min_insync_replicas),
            )
            for name, spec in names.items()
            if name not in states
        ]
        if missing:
            await admin.create_topics(missing)
            report.created = [t.name for t in missing]
            await wait_for_topics(cfg, report.created)
        fixed = []
        for name, state in states.items():
            repaired = await _reconcile(
                admin,
                names[name],
                name,
                state,
                report,
                fix,
                wanted_configs(names[name], min_insync_replicas),
                _replication(names[name], cfg),
            )
            if repaired:
                fixed.append(name)
    finally:
        await admin.close()
    if fixed:
        await _wait_applied(cfg, {n: names[n] for n in fixed}, min_insync_replicas)
    if min_insync_replicas is not None:
        await apply_changelogs(cfg, min_insync_replicas, report, fix=fix)
    return report


#: DescribeConfigs v1+ ``config_source`` of a value set on the topic itself
TOPIC_CONFIG_SOURCE = 1


async def _topic_level_configs(
    admin: AIOKafkaAdminClient, names: list[str]
) -> dict[str, dict[str, str]]:
    """The configs set on each topic itself (not the brokers' defaults): what an
    AlterConfigs must send again to keep them."""
    out: dict[str, dict[str, str]] = {n: {} for n in names}
    if not names:
        return out
    resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
    for response in await admin.describe_configs(resources):
        for resource in response.resources:
            for entry in resource[4]:
                if entry[3] == TOPIC_CONFIG_SOURCE and entry[1] is not None:
                    out[resource[3]][entry[0]] = entry[1]
    return out


def is_changelog(name: str, cfg: KafkaConfig) -> bool:
    """A Faust table changelog of this deployment (``<app_id>-<role>-<table>-changelog``)."""
    return name.startswith(f"{cfg.app_id}-") and name.endswith("-changelog")


async def apply_changelogs(
    cfg: KafkaConfig, min_insync_replicas: int, report: ApplyReport, *, fix: bool = False
) -> None:
    """Give the workers' table changelogs ``min.insync.replicas`` too: one without the key
    gets it (as a topic apply creates would), another value is drift (``fix`` sets it);
    fewer replicas than that is drift (every write to it would fail). The workers set it
    when they create a changelog (``kafka.min_insync_replicas``); this covers the ones
    made before, and the brokers' default is then not what decides."""
    admin = make_admin(cfg)
    await admin.start()
    try:
        names = [n for n in await admin.list_topics() if is_changelog(n, cfg)]
        own = await _topic_level_configs(admin, names)
    finally:
        await admin.close()
    states = await describe(cfg, names)
    wanted = str(min_insync_replicas)
    change: dict[str, dict[str, str]] = {}
    for name, state in sorted(states.items()):
        current = own.get(name, {}).get("min.insync.replicas")  # not the brokers' default
        if state.replication < min_insync_replicas:
            report.drift.append(
                f"{name}: {state.replication} replicas < min.insync.replicas {wanted}: "
                "writes would fail; left alone (reassign its replicas first)"
            )
        elif current == wanted:
            report.unchanged.append(name)
        elif current is None or fix:
            change[name] = own.get(name, {}) | {"min.insync.replicas": wanted}
            report.fixed.append(f"{name}: min.insync.replicas {current!r} -> {wanted!r}")
        else:
            report.drift.append(
                f"{name}: min.insync.replicas {current!r} -> {wanted!r} (run with --fix)"
            )
    if not change:
        return
    admin = make_admin(cfg)
    await admin.start()
    try:  # AlterConfigs replaces the dynamic configs: the topic's others go along
        resources = [ConfigResource(ConfigResourceType.TOPIC, n, c) for n, c in change.items()]
        for response in await admin.alter_configs(resources):
            for code, message, _type, resource in response.resources:
                if code:
                    raise for_code(code)(f"could not alter configs of {resource}: {message}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30.0
        while True:  # applied by the broker a moment after it answered (_wait_applied)
            seen = await _topic_level_configs(admin, list(change))
            late = [n for n in change if seen[n].get("min.insync.replicas") != wanted]
            if not late:
                break
            if loop.time() > deadline:
                raise TimeoutError(f"min.insync.replicas not applied to {late} within 30s")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def _wait_applied(
    cfg: KafkaConfig,
    specs: dict[str, TopicSpec],
    min_insync_replicas: int | None,
    timeout_s: float = 30.0,
) -> None:
    """Poll until the fixed topics show their wanted partitions and configs. A KRaft broker
    answers AlterConfigs once the controller has committed the change and applies it to its
    own view a moment later, so a describe right after a fix can still show the old value."""

    def behind(states: dict[str, TopicState]) -> list[str]:
        return [
            name
            for name, spec in specs.items()
            if name not in states
            or states[name].partitions < spec.partitions
            or _wrong_configs(states[name], wanted_configs(spec, min_insync_replicas))
        ]

    await _poll(cfg, list(specs), behind, "fixes", timeout_s)


def _wrong_configs(state: TopicState, configs: dict[str, str]) -> dict[str, str]:
    """The managed configs whose value on the topic is not the wanted one (wanted values)."""
    return {k: v for k, v in configs.items() if state.configs.get(k) != v}


async def _reconcile(
    admin: AIOKafkaAdminClient,
    spec: TopicSpec,
    name: str,
    state: TopicState,
    report: ApplyReport,
    fix: bool,
    configs: dict[str, str],
    replication: int,
) -> bool:
    """Report ``name``'s drift (and with ``fix``, repair it); True if it was repaired."""
    problems: list[str] = []
    if state.replication < replication:
        report.drift.append(
            f"{name}: replication factor {state.replication}, wanted {replication}; "
            "apply does not move replicas (use kafka-reassign-partitions.sh), left alone"
        )
    if state.partitions > spec.partitions:
        report.drift.append(
            f"{name}: has {state.partitions} partitions, catalog says "
            f"{spec.partitions}; Kafka cannot shrink a topic, left alone"
        )
    elif state.partitions < spec.partitions:
        problems.append(f"partitions {state.partitions} -> {spec.partitions}")
    wrong = _wrong_configs(state, configs)
    problems += [f"{k} {state.configs.get(k)!r} -> {v!r}" for k, v in wrong.items()]
    if not problems:
        if name not in " ".join(report.drift):
            report.unchanged.append(name)
        return False
    if not fix:
        report.drift.append(f"{name}: " + "; ".join(problems) + " (run with --fix to apply)")
        return False
    if state.partitions < spec.partitions:
        await admin.create_partitions({name: NewPartitions(spec.partitions)})
    if wrong:  # AlterConfigs replaces the topic's dynamic configs: send every managed key
        keep = {k: v for k, v in state.configs.items() if k == "min.insync.replicas"}
        responses = await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name, keep | configs)]
        )
        for response in responses:
            for code, message, _type, resource in response.resources:
                if code:
                    raise for_code(code)(f"could not alter configs of {resource}: {message}")
    report.fixed.append(f"{name}: " + "; ".join(problems))
    return True


async def delete_run_topics(cfg: KafkaConfig) -> list[str]:
    """Delete the topics of one run: those under ``cfg.topic_prefix`` and the workers'
    changelogs (``<app_id>-...``). Tests and benchmarks call it after themselves: topics
    left behind pile up on the broker (thousands of partitions filled a 512 MB heap and put
    it into back-to-back full GCs). Refused without a prefix: never a shared deployment's
    own topics."""
    if not cfg.topic_prefix:
        raise ValueError("delete_run_topics needs kafka.topic_prefix (a run's own topics)")
    owned = (cfg.topic_prefix, f"{cfg.app_id}-")
    admin = make_admin(cfg)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(owned)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


#: a topic just created must be known to every broker within this (else an error)
VISIBLE_TIMEOUT_S = 60.0


async def ensure_compacted(cfg: KafkaConfig, partitions: dict[str, int]) -> list[str]:
    """Create the compacted topics ``partitions`` names (a worker's table changelogs, with
    their partition counts) that do not exist yet, as Faust would (``cfg``'s replication
    factor and ``min.insync.replicas``), and wait until every broker's metadata has each of
    them with a leader for every partition. Returns the names created.

    On a 3-node KRaft cluster Faust created a worker's changelogs and subscribed to them
    at once; a broker that did not know one yet answered the metadata request without it,
    so the group's assignor ignored it ("Ignoring missing topic") or the producer's
    metadata lost it and the first table write crashed (``TypeError: 'NoneType' object is
    not iterable`` in aiokafka's ``_partition``): the worker then did nothing
    (tests/faults/test_cluster_broker_kill.py failed 3 of 6 runs). Made and seen
    everywhere before Faust starts, Faust finds them there."""
    configs = {"cleanup.policy": "compact"}
    if cfg.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(cfg.min_insync_replicas)
    admin = make_admin(cfg)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        new = [n for n in sorted(partitions) if n not in existing]
        if new:
            topics = [
                NewTopic(n, partitions[n], cfg.replication_factor, topic_configs=configs)
                for n in new
            ]
            response = await admin.create_topics(topics)
            for name, code, *_ in response.topic_errors:
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (another worker)
                    raise for_code(code)(f"could not create changelog {name}")
    finally:
        await admin.close()
    await visible_everywhere(cfg, partitions)
    return new


async def visible_everywhere(cfg: KafkaConfig, partitions: dict[str, int]) -> None:
    """Wait until each broker answers metadata for ``partitions``' topics with all their
    partitions led (a metadata request to one broker, per broker)."""
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.metadata import MetadataRequest

    from algostream.kafka.clients import client_kwargs

    client = AIOKafkaClient(**client_kwargs(cfg))
    await client.bootstrap()
    deadline = asyncio.get_running_loop().time() + VISIBLE_TIMEOUT_S
    names = sorted(partitions)
    try:
        while True:
            missing = []
            for broker in client.cluster.brokers():
                response = await client.send(broker.nodeId, MetadataRequest(names))
                for topic in response.topics:  # (error, name, [is_internal,] partitions)
                    code, name, parts = topic[0], topic[1], topic[-1]
                    led = [p for p in parts if p[0] == 0 and p[2] >= 0]  # (error, id, leader, ...)
                    if code != 0 or len(led) < partitions[name]:
                        missing.append(f"{name}@{broker.nodeId}")
            if not missing:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"topics not known to every broker: {missing[:5]}")
            await asyncio.sleep(0.2)
    finally:
        await client.close()
