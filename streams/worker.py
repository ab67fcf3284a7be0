"""Run one worker role: build its Faust app, register its agents, serve /metrics.

A role is a list of agent modules (``ROLES``); each module has
``register(app, edge, settings) -> None``. A new agent is one module in ``streams/`` plus
one entry here (and its topics in ``topics/topics.toml``).

With ``signal.colocated`` (the default) the market worker also runs the feature and signal
stages, fed in-process by its own bar and book agents: a closed bar becomes a proposal in
the task that read the closing trade, with no Kafka hop and no second reader of
``book.top``. The ``signals`` role is then empty (:func:`worker_roles` leaves it out and
starting it is an error); with ``colocated: false`` it runs them from the topics instead.
"""

from __future__ import annotations

import importlib
from typing import Any

import faust

from algostream.config import Settings
from streams.app import Edge, create_app

ROLES: dict[str, list[str]] = {
    "market": ["streams.book", "streams.bars"],  # + features and signals when colocated
    "signals": ["streams.features", "streams.signals"],
    "trading": ["streams.risk", "streams.execution"],
}
#: default ports per role: (faust web, prometheus /metrics)
PORTS: dict[str, tuple[int, int]] = {
    "market": (6066, 9402),
    "signals": (6067, 9403),
    "trading": (6068, 9404),
}


#: what the market role adds with ``signal.colocated``
COLOCATED = ["streams.features", "streams.signals"]


class RoleError(ValueError):
    """A worker role that does not exist, or has nothing to run with this config."""


def worker_roles(settings: Settings) -> list[str]:
    """The roles a whole deployment runs with ``settings`` (demo, benchmarks, tests)."""
    return [r for r in ROLES if not (r == "signals" and settings.signal.colocated)]


def role_modules(settings: Settings, role: str) -> list[str]:
    """The agent modules of ``role`` with ``settings``; :class:`RoleError` if none."""
    if role not in ROLES:
        raise RoleError(f"unknown worker role {role!r}; known: {', '.join(ROLES)}")
    if role == "signals" and settings.signal.colocated:
        raise RoleError(
            "worker role 'signals' has nothing to run: signal.colocated is true, so the "
            "market worker runs the feature and signal stages (set signal.colocated: false "
            "to run them in their own worker)"
        )
    if role == "market" and settings.signal.colocated:
        return ROLES[role] + COLOCATED
    return ROLES[role]


def build_worker_app(
    settings: Settings, role: str, *, modules: list[str] | None = None, **overrides: Any
) -> tuple[faust.App, Edge]:
    """The Faust app of ``role`` with its agents registered."""
    names = role_modules(settings, role) if modules is None else modules
    web_port = overrides.pop("web_port", PORTS.get(role, (6070, 0))[0])
    if web_port == 0:  # no Faust web server (metrics have their own port)
        overrides["web_enabled"] = False
        web_port = PORTS.get(role, (6070, 0))[0]  # unused, but Faust validates it
    app, edge = create_app(settings, role, web_port=web_port, **overrides)
    for name in names:
        importlib.import_module(name).register(app, edge, settings)
    _report_lag(app, edge)
    return app, edge


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
            highwater = consumer.highwater(tp)
            read = getattr(consumer, "_read_offset", {}).get(tp)  # last offset processed
            if highwater is None:
                continue
            lag = max(0, highwater - (read + 1 if read is not None else 0))
            metrics.CONSUMER_LAG.labels(
                agent=edge.role, topic=tp.topic[len(prefix) :], partition=str(tp.partition)
            ).set(lag)


def run_worker(
    settings: Settings,
    role: str,
    *,
    web_port: int | None = None,
    metrics_port: int | None = None,
    loglevel: str = "WARNING",
) -> None:
    """Block running the worker until SIGTERM/SIGINT."""
    from algostream.model.ids import instrument_id
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
        strategies=[settings.signal.strategy],
        reject_reasons=[r.value for r in RejectReason],
    )
    default_web, default_metrics = PORTS.get(role, (6070, 9409))
    app, _ = build_worker_app(
        settings, role, web_port=default_web if web_port is None else web_port
    )
    port = start_metrics_server(default_metrics if metrics_port is None else metrics_port)
    WORKER_UP.labels(agent=role).set(1)
    print(f"worker {role}: metrics on port {port} (/metrics)", flush=True)
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
