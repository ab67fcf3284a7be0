"""Run one worker role: build its Faust app, its stages and agents, serve /metrics.

A role is a list of modules: a stage module has ``stages(app, edge, settings) ->
list[Stage]`` (:mod:`streams.stage`: the stage declares its inputs, outputs and state);
a module of your own agents (``workers.agents``) may have ``register(app, edge,
settings)`` instead (plain Faust agents). The worker wires every stage's inputs
(:func:`streams.stage.wire`): a topic a stage of the same worker publishes is handed over
in-process (:meth:`Edge.publish <streams.edge.Edge.publish>`, every record still produced
to its topic first), any other is read from its topic. ``signal.in_process: false`` takes
``features`` and ``signals`` through Kafka even within one worker, and
``execution.in_process: false`` the approvals.

``workers.layout`` decides which stages share a process (:data:`LAYOUTS`):

- ``colocated`` (default): ``market`` (book, bars, features, strategy, sizing) and
  ``trading`` (risk, execution). A closed bar becomes a proposal in the task that read
  its closing trade; one Kafka hop (``orders.proposed``) to the gate. Market workers
  scale out by partition.
- ``single``: one ``all`` worker, every stage in-process from the tick to the paper
  fill. One process only: the gate and the paper broker see the book tops this worker
  makes, so a second worker (which would take some market partitions) is reported as an
  error; scale out with ``colocated``.
- ``split``: ``market`` (book, bars), ``signals`` (features, strategy, sizing) and
  ``trading``, each reading its input topics.
"""

from __future__ import annotations

import asyncio
import importlib
import threading
from typing import Any

import faust
import structlog

from algostream.config import Settings
from algostream.observability import heap
from streams import fencing, watchdog
from streams.app import create_app
from streams.edge import Edge
from streams.stage import Stage, wire

MARKET = ["streams.book", "streams.bars"]
SIGNALS = ["streams.features", "streams.signals"]
TRADING = ["streams.risk", "streams.execution"]
LAYOUTS: dict[str, dict[str, list[str]]] = {
    "colocated": {"market": MARKET + SIGNALS, "trading": TRADING},
    "single": {"all": MARKET + SIGNALS + TRADING},
    "split": {"market": MARKET, "signals": SIGNALS, "trading": TRADING},
}
ROLES = sorted({role for roles in LAYOUTS.values() for role in roles})
#: default ports per role: (faust web, prometheus /metrics)
PORTS: dict[str, tuple[int, int]] = {
    "market": (6066, 9402),
    "all": (6066, 9402),
    "signals": (6067, 9403),
    "trading": (6068, 9404),
}

log = structlog.get_logger("algostream.streams")


class RoleError(ValueError):
    """A worker role that does not exist, or is not part of the configured layout."""


def worker_roles(settings: Settings) -> list[str]:
    """The roles a whole deployment runs with ``settings`` (demo, benchmarks, tests): the
    layout's, then the roles of your own agents (``workers.agents``)."""
    roles = list(LAYOUTS[settings.workers.layout])
    return roles + sorted(set(settings.workers.agents) - set(roles))


def role_ports(settings: Settings, role: str) -> tuple[int, int]:
    """Default (Faust web, /metrics) ports of ``role``; a role of your own agents gets the
    next free pair after the built-in ones (6070/9410, 6071/9411, ...)."""
    if role in PORTS:
        return PORTS[role]
    extra = [r for r in worker_roles(settings) if r not in PORTS]
    i = extra.index(role) if role in extra else 0
    return 6070 + i, 9410 + i


def role_modules(settings: Settings, role: str) -> list[str]:
    """The agent modules of ``role`` in the configured layout; :class:`RoleError` if none."""
    layout = settings.workers.layout
    roles = LAYOUTS[layout]
    extra = settings.workers.agents.get(role, [])
    if extra:  # your own agents: a role of their own, or added to a layout's role
        return [*roles.get(role, []), *extra]
    if role not in roles:
        known = "unknown worker role" if role not in ROLES else "no worker role"
        raise RoleError(
            f"{known} {role!r} in workers.layout {layout!r}: its roles are "
            f"{', '.join([*roles, *sorted(set(settings.workers.agents) - set(roles))])}"
            + "".join(
                f"; {role!r} is a role of layout {other!r}"
                for other, rs in LAYOUTS.items()
                if role in rs and other != layout
            )
        )
    return roles[role]


def build_worker_app(
    settings: Settings, role: str, *, modules: list[str] | None = None, **overrides: Any
) -> tuple[faust.App, Edge]:
    """The Faust app of ``role`` with its agents registered."""
    names = role_modules(settings, role) if modules is None else modules
    web_port = overrides.pop("web_port", role_ports(settings, role)[0])
    if web_port == 0:  # no Faust web server (metrics have their own port)
        overrides["web_enabled"] = False
        web_port = role_ports(settings, role)[0]  # unused, but Faust validates it
    app, edge = create_app(settings, role, web_port=web_port, **overrides)
    imported = [_agent_module(settings, role, name) for name in names]
    if settings.workers.layout != "single" and any(
        getattr(m, "ACCOUNT_STAGES", False) for m in imported
    ):  # the account's stages, fenced (single: one worker, no standby to fence)
        fencing.install(app, edge, settings)
    stages: list[Stage] = []
    for module in imported:
        if callable(getattr(module, "stages", None)):
            stages += module.stages(app, edge, settings)
        else:
            module.register(app, edge, settings)
    wire(app, edge, settings, stages, not_local=not_local(settings))
    _changelog_durability(app, settings)
    _changelog_metadata(app)
    _report_lag(app, edge)
    watchdog.register(app, edge, settings)
    if settings.workers.layout == "single" and modules is None:
        _one_worker_only(app, edge)
    return app, edge


def not_local(settings: Settings) -> frozenset[str]:
    """Topics taken through Kafka even between two stages of one worker (config)."""
    off: set[str] = set()
    if not settings.signal.in_process:
        off |= {"features", "signals"}
    if not settings.execution.in_process:
        off.add("orders.approved")
    return frozenset(off)


def agent_modules(settings: Settings, role: str) -> list[Any]:
    """The imported agent modules of ``role`` (:class:`RoleError` for a role or a module of
    ``workers.agents`` that does not exist: said at start, not at the first record)."""
    return [_agent_module(settings, role, name) for name in role_modules(settings, role)]


def _agent_module(settings: Settings, role: str, name: str) -> Any:
    """The module ``name`` of ``role``, with its ``stages(app, edge, settings)`` or
    ``register(app, edge, settings)``; a module of ``workers.agents`` that cannot be
    imported or has neither is a :class:`RoleError` naming the key."""
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        if name not in settings.workers.agents.get(role, []):
            raise
        raise RoleError(f"workers.agents.{role}: cannot import {name!r}: {exc}") from exc
    if not any(callable(getattr(module, f, None)) for f in ("stages", "register")):
        raise RoleError(
            f"workers.agents.{role}: module {name!r} has no register(app, edge, settings) "
            "nor stages(app, edge, settings)"
        )
    return module


def _changelog_durability(app: faust.App, settings: Settings) -> None:
    """Changelog topics the worker creates get ``kafka.min_insync_replicas`` (a cluster:
    2), like the catalog's topics from ``topics apply``, not the brokers' default."""
    n = settings.kafka.min_insync_replicas
    if n is None:
        return
    for table in app.tables.values():
        table.extra_topic_configs = {**table.extra_topic_configs, "min.insync.replicas": str(n)}


def _changelog_metadata(app: faust.App) -> None:
    """Before the tables are recovered and written, the producer knows their changelog
    topics' partitions. On a 3-node cluster the trading worker crashed at its first table
    write (``TypeError`` in aiokafka's ``_partition``: no metadata yet for the changelog
    Faust had just created; the local single broker answers fast enough to hide it)."""

    async def known(*_: object, **__: object) -> None:
        producer = getattr(app.producer, "_producer", None)
        if producer is None:
            return
        for table in app.tables.values():
            await asyncio.wait_for(
                producer.partitions_for(table.changelog_topic.get_topic_name()), 30.0
            )

    app.on_partitions_assigned.connect(known)


def _prepare_changelogs(app: faust.App, edge: Edge, settings: Settings) -> None:
    """Create the worker's changelog topics (its tables', its group assignor's, the
    account state's) and wait until every broker knows them, before Faust starts
    (:func:`algostream.kafka.provision.ensure_compacted` says why). Run in a thread of
    its own: Faust's event loop is not made yet."""
    from algostream.kafka.provision import ensure_compacted

    topics = {
        t.changelog_topic.get_topic_name(): t.partitions or app.conf.topic_partitions
        for t in app.tables.values()
    }
    topics[f"{app.conf.id}-__assignor-__leader"] = 1
    if edge.txn is not None:
        topics[edge.txn.state.topic] = 1
    failed: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(ensure_compacted(settings.kafka, topics))
        except BaseException as exc:  # re-raised in the worker's thread
            failed.append(exc)

    thread = threading.Thread(target=run, name="changelogs")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]


def _one_worker_only(app: faust.App, edge: Edge) -> None:
    """The single layout's gate and paper broker take book tops in-process, so they see
    only the market partitions this worker owns: a second worker is an error, said loudly
    at every rebalance (its partitions' tops would not reach the gate)."""
    want = edge.catalog["md.book"].partitions

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def check_one_worker(_app: faust.App, assigned: object, **_: object) -> None:
        mine = sorted(edge.assigned("md.trades"))  # md.book's partitions go with them
        if len(mine) < want:
            log.error(
                "workers.layout single runs one worker, but this one was assigned only "
                "some market partitions: stop the other workers, or use layout colocated "
                "to scale out",
                partitions=mine,
                of=want,
            )


def _report_lag(app: faust.App, edge: Edge) -> None:
    """Every few seconds: records behind the end of each assigned input partition."""
    from algostream.observability import metrics

    prefix = edge.prefix

    @app.timer(interval=5.0)  # type: ignore[untyped-decorator]
    async def consumer_lag() -> None:
        consumer = app.consumer
        for tp in consumer.assignment():
            if not tp.topic.startswith(prefix) or tp.topic[len(prefix) :] not in edge.catalog:
                continue  # changelogs and other internal topics
            if tp.topic in edge.held:
                continue  # read by the worker's batch reader, which reports its own lag
            highwater = consumer.highwater(tp)
            read = getattr(consumer, "_read_offset", {}).get(tp)  # last offset processed
            if highwater is None:
                continue
            lag = max(0, highwater - (read + 1 if read is not None else 0))
            metrics.CONSUMER_LAG.labels(
                agent=edge.role, topic=tp.topic[len(prefix) :], partition=str(tp.partition)
            ).set(lag)


def _settle_heap(app: faust.App) -> None:
    """Time the garbage collector's pauses, and freeze the heap once the worker has its
    partitions and tables (after every rebalance: the recovered tables live on):
    :mod:`algostream.observability.heap`."""
    heap.watch()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def settle(_app: faust.App, **_: object) -> None:
        heap.settle()


def run_worker(
    settings: Settings,
    role: str,
    *,
    web_port: int | None = None,
    metrics_port: int | None = None,
    loglevel: str = "WARNING",
) -> None:
    """Block running the worker until SIGTERM/SIGINT."""
    from algostream.kafka.reachability import wait_for_kafka
    from algostream.model.ids import instrument_id
    from algostream.observability.health import restart_when_stuck
    from algostream.observability.logging import (
        configure_logging,
        faust_logging_config,
        register_secrets_from,
    )
    from algostream.observability.metrics import WORKER_UP, preregister, start_metrics_server
    from algostream.risk.limits import RejectReason

    configure_logging(settings.observability)
    register_secrets_from(settings)
    md = settings.market_data
    preregister(
        instruments=[instrument_id(md.exchange, s) for s in md.symbols],
        accounts=[settings.risk.account],
        exchanges=[md.exchange],
        agents=[role],
        strategies=[spec.id for spec in settings.signal.specs()],
        reject_reasons=[r.value for r in RejectReason],
        shadow=[spec.id for spec in settings.shadow_specs()],
    )
    default_web, default_metrics = role_ports(settings, role)
    app, edge = build_worker_app(
        settings, role, web_port=default_web if web_port is None else web_port
    )
    port = start_metrics_server(
        default_metrics if metrics_port is None else metrics_port,
        addr=settings.observability.metrics_host,
    )
    print(f"worker {role}: metrics on port {port} (/metrics)", flush=True)
    wait_for_kafka(settings.kafka.bootstrap_servers)
    _prepare_changelogs(app, edge, settings)
    WORKER_UP.labels(agent=role).set(1)
    if settings.workers.stall_restart_s > 0:  # a hung worker exits to be restarted
        restart_when_stuck(settings.workers.stall_restart_s)
    _settle_heap(app)
    worker = faust.Worker(
        app,
        loglevel=loglevel,
        quiet=True,
        logging_config=faust_logging_config(settings.observability),
    )
    # Faust's start-up spinner sets the root logger to DEBUG so it can spin on every line;
    # then every debug call in aiokafka/faust builds a LogRecord (10% of the book agent's
    # time under load, found with py-spy). Workers run headless: no spinner.
    worker.spinner = None
    worker.execute_from_commandline()
