"""``algostream``: the command line. Every command has ``--help``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from algostream.config import ConfigError, Settings, load_settings

app = typer.Typer(
    help="algostream: a Kafka-native algorithmic trading platform.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
broker_app = typer.Typer(
    help="Run a local single-node Kafka broker (KRaft) under .kafka/.", no_args_is_help=True
)
topics_app = typer.Typer(help="The topic catalog (topics/topics.toml).", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(broker_app, name="broker")
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")

console = Console(width=None if sys.stdout.isatty() else 160)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="system.json to load")]
REPO = Path(__file__).resolve().parent.parent


def settings_or_exit(path: Path | None) -> Settings:
    try:
        return load_settings(path)
    except ConfigError as exc:
        console.print(f"[red]config error:[/red] {exc}")
        raise typer.Exit(2) from None


def kafka_root() -> Path:
    return Path(os.environ.get("ALGOSTREAM_KAFKA_HOME", REPO / ".kafka"))


def broker_port() -> int:
    return int(os.environ.get("ALGOSTREAM_BROKER_PORT", "9092"))


# ---------------------------------------------------------------------- broker
@broker_app.command("start")
def broker_start() -> None:
    """Fetch Kafka from Maven Central (cached), format KRaft storage, start, wait until ready."""
    from algostream.kafka.errors import BrokerError
    from algostream.kafka.local_broker import LocalBroker

    try:
        status = LocalBroker(kafka_root(), port=broker_port()).start()
    except BrokerError as exc:
        console.print(f"[red]broker failed:[/red] {exc}")
        raise typer.Exit(1) from None
    console.print(
        f"broker running: pid {status.pid}, bootstrap {status.bootstrap}, log {status.log}"
    )


@broker_app.command("stop")
def broker_stop() -> None:
    """Stop the local broker."""
    from algostream.kafka.local_broker import LocalBroker

    stopped = LocalBroker(kafka_root(), port=broker_port()).stop()
    console.print("broker stopped" if stopped else "broker was not running")


@broker_app.command("status")
def broker_status() -> None:
    """Show whether the local broker runs and answers metadata requests."""
    from algostream.kafka.local_broker import LocalBroker, answers_metadata

    status = LocalBroker(kafka_root(), port=broker_port()).status()
    answering = status.running and answers_metadata(status.bootstrap)
    console.print(
        f"running={status.running} pid={status.pid} bootstrap={status.bootstrap} "
        f"answering={answering} log={status.log}"
    )
    if not answering:
        raise typer.Exit(1)


# ---------------------------------------------------------------------- topics
@topics_app.command("apply")
def topics_apply(
    config: ConfigOpt = None,
    fix: Annotated[bool, typer.Option(help="also repair drift that loses no data")] = False,
    prefix: Annotated[str | None, typer.Option(help="topic name prefix")] = None,
    replication_factor: Annotated[
        int | None,
        typer.Option(min=1, help="replicas per partition (default: kafka.replication_factor)"),
    ] = None,
    min_insync_replicas: Annotated[
        int | None,
        typer.Option(min=1, help="set min.insync.replicas on every topic (cluster: 2)"),
    ] = None,
) -> None:
    """Create missing topics and report drift. Never deletes a topic."""
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.provision import apply_catalog, check_durability

    settings = settings_or_exit(config)
    kafka = settings.kafka
    if replication_factor is not None:
        kafka = kafka.model_copy(update={"replication_factor": replication_factor})
    catalog = load_catalog()
    try:
        check_durability(catalog, kafka, min_insync_replicas)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    report = asyncio.run(
        apply_catalog(
            catalog, kafka, fix=fix, prefix=prefix, min_insync_replicas=min_insync_replicas
        )
    )
    for name in report.created:
        console.print(f"created   {name}")
    for line in report.fixed:
        console.print(f"fixed     {line}")
    for line in report.drift:
        console.print(f"[yellow]drift[/yellow]     {line}")
    console.print(
        f"{len(report.created)} created, {len(report.unchanged)} unchanged, "
        f"{len(report.fixed)} fixed, {len(report.drift)} with drift"
    )
    if not report.ok:
        raise typer.Exit(3)


@topics_app.command("list")
def topics_list(config: ConfigOpt = None) -> None:
    """List catalog topics with their state on the cluster."""
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.provision import describe

    settings = settings_or_exit(config)
    catalog = load_catalog()
    prefix = settings.kafka.topic_prefix
    states = asyncio.run(describe(settings.kafka, [s.full_name(prefix) for s in catalog.values()]))
    table = Table("topic", "key", "record", "partitions", "cluster", "retention/cleanup")
    for spec in catalog.values():
        state = states.get(spec.full_name(prefix))
        cluster = str(state.partitions) if state else "missing"
        policy = spec.cleanup if spec.cleanup == "compact" else f"retention.ms={spec.retention_ms}"
        table.add_row(
            spec.full_name(prefix), spec.key, spec.record, str(spec.partitions), cluster, policy
        )
    console.print(table)


# ---------------------------------------------------------------------- config
@config_app.command("show")
def config_show(config: ConfigOpt = None) -> None:
    """Print the effective config (file + env overrides) with secrets masked."""
    settings = settings_or_exit(config)
    typer.echo(json.dumps(settings.masked(), indent=2))


def main() -> None:
    from algostream import commands  # noqa: F401  (registers the runtime commands)
    from algostream.history import cli as _history  # noqa: F401  (history import)

    app()
