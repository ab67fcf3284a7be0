"""Runtime commands registered on the CLI: worker, control, sim, ingest, demo, ..."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer

from algostream.cli import ConfigOpt, app, console, settings_or_exit
from algostream.model.enums import ControlAction
from algostream.model.records import Record

control_app = typer.Typer(
    help="Operator commands to the risk and execution agents (control topic).", no_args_is_help=True
)
app.add_typer(control_app, name="control")


@app.command("worker")
def worker(
    role: Annotated[str, typer.Argument(help="a role of workers.layout (market, trading...)")],
    config: ConfigOpt = None,
    web_port: Annotated[int | None, typer.Option(help="Faust web port")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="/metrics port (0: any)")] = None,
) -> None:
    """Run the stream agents of one worker role (Faust worker; scale out by running more)."""
    from streams.worker import RoleError, role_modules, run_worker

    settings = settings_or_exit(config)
    try:
        role_modules(settings, role)
    except RoleError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    run_worker(settings, role, web_port=web_port, metrics_port=metrics_port)


def _control(
    action: ControlAction, instrument: str, reason: str, actor: str, config: Path | None
) -> None:
    from algostream.kafka.publisher import KafkaPublisher
    from algostream.model.ids import derive_id
    from algostream.model.records import ControlCommand
    from algostream.risk.control_auth import sign

    settings = settings_or_exit(config)
    secret = settings.risk.control_key
    if secret is None:
        console.print(
            "[red]no operator key: set ALGOSTREAM_CONTROL_KEY or ALGOSTREAM_CONTROL_KEY_FILE "
            "(an owner-only file); the risk gate refuses unsigned commands[/red]"
        )
        raise typer.Exit(2)
    now = time.time_ns()
    unsigned = ControlCommand(
        instrument=instrument,
        ts_event=now,
        ts_init=now,
        record_id=derive_id("control", action.value, instrument, now),
        lineage_id="operator",
        action=action,
        actor=actor,
        reason=reason,
    )
    cmd = sign(unsigned, secret.get_secret_value().encode())

    async def send() -> None:
        pub = KafkaPublisher(settings.kafka)
        await pub.start()
        try:
            await pub.publish("control", cmd)
        finally:
            stats = await pub.flush()
            await pub.producer.stop()
        if stats.delivered != 1:
            raise typer.Exit(1)

    asyncio.run(send())
    console.print(f"{action.value} {instrument} sent by {actor}: {reason}")


_Instrument = Annotated[str, typer.Option(help="VENUE:SYMBOL, or ALL:* for every instrument")]
_Reason = Annotated[str, typer.Option(help="why (recorded in risk.events)")]
_Actor = Annotated[str, typer.Option(help="who (recorded in risk.events)")]


@control_app.command("halt")
def control_halt(
    reason: _Reason,
    instrument: _Instrument = "ALL:*",
    actor: _Actor = "operator",
    config: ConfigOpt = None,
) -> None:
    """Kill switch: reject every new order."""
    _control(ControlAction.HALT, instrument, reason, actor, config)


@control_app.command("reduce")
def control_reduce(
    reason: _Reason,
    instrument: _Instrument = "ALL:*",
    actor: _Actor = "operator",
    config: ConfigOpt = None,
) -> None:
    """Only allow orders that reduce exposure."""
    _control(ControlAction.REDUCE, instrument, reason, actor, config)


@control_app.command("resume")
def control_resume(
    reason: _Reason,
    instrument: _Instrument = "ALL:*",
    actor: _Actor = "operator",
    config: ConfigOpt = None,
) -> None:
    """Back to ACTIVE (book-integrity problems still hold until resynced)."""
    _control(ControlAction.RESUME, instrument, reason, actor, config)


@control_app.command("flatten")
def control_flatten(
    reason: _Reason,
    instrument: _Instrument = "ALL:*",
    actor: _Actor = "operator",
    config: ConfigOpt = None,
) -> None:
    """Close every open position with market orders, then stay REDUCING."""
    _control(ControlAction.FLATTEN, instrument, reason, actor, config)


@app.command("sim")
def sim(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port (0: any free port)")] = None,
    rate: Annotated[float | None, typer.Option(help="market events per second")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (same seed, same market)")] = None,
    capture: Annotated[str | None, typer.Option(help="play back a recorded .ws capture")] = None,
) -> None:
    """Run the exchange simulator: Binance + Coinbase WebSocket and REST on one port."""
    import os

    from algostream.sim.server import run_simulator
    from algostream.sim.trading import trading_setup

    settings = settings_or_exit(config)
    s = settings.sim
    setup = []
    key, secret = os.environ.get("ALGOSTREAM_API_KEY"), os.environ.get("ALGOSTREAM_API_SECRET")
    if key and secret:  # serve the signed order API only with credentials to check against
        setup.append(trading_setup(key, secret))
    capture = capture or s.capture
    http = s.capture_http or (capture.replace(".ws.", ".http.") if capture else None)

    def ready(bound: int) -> None:
        console.print(
            f"simulator listening on http://{bind}:{bound} (ws://{bind}:{bound}/stream, /coinbase)"
        )

    bind = host or s.host
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_simulator(
                bind,
                s.port if port is None else port,
                settings.market_data.symbols,
                s.seed if seed is None else seed,
                s.rate if rate is None else rate,
                levels=s.levels,
                capture=capture,
                capture_http=http,
                speed=s.speed,
                setup=setup,
                ready=ready,
            )
        )


@app.command("demo")
def demo(
    config: ConfigOpt = None,
    duration: Annotated[float | None, typer.Option(help="stop after N seconds")] = None,
    logs: Annotated[Path, typer.Option(help="where child logs go")] = Path(".data/logs"),
) -> None:
    """Broker + topics + simulator + ingestor + every worker, with a live summary."""
    from algostream.cli import broker_port, kafka_root
    from algostream.demo import run_demo
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.local_broker import LocalBroker
    from algostream.kafka.provision import apply_catalog

    settings = settings_or_exit(config)
    if settings.kafka.bootstrap_servers == f"127.0.0.1:{broker_port()}":
        LocalBroker(kafka_root(), port=broker_port()).start()
    report = asyncio.run(apply_catalog(load_catalog(), settings.kafka))
    for line in report.drift:
        console.print(f"[yellow]topic drift:[/yellow] {line}")
    raise typer.Exit(run_demo(settings, logs, duration))


@app.command("ingest")
def ingest_cmd(
    config: ConfigOpt = None,
    metrics_port: Annotated[int | None, typer.Option(help="/metrics port (0: any)")] = None,
) -> None:
    """Connect to the configured exchange (the simulator by default) and write md.* topics."""
    from algostream.ingest.run import run_ingest

    run_ingest(settings_or_exit(config), metrics_port)


capture_app = typer.Typer(
    help="Capture files: share history as compressed JSON lines.", no_args_is_help=True
)
app.add_typer(capture_app, name="capture")
model_app = typer.Typer(
    help="Train and inspect ML models for the model strategy.", no_args_is_help=True
)
app.add_typer(model_app, name="model")

_From = Annotated[str | None, typer.Option("--from", help="start: ISO time or unix ns")]
_To = Annotated[str | None, typer.Option("--to", help="end: ISO time or unix ns")]


def parse_time(text: str | None) -> int | None:
    """Unix ns from ``1767225600000000000`` or ``2026-01-01T00:00:00Z``."""
    from datetime import datetime

    if text is None:
        return None
    if text.isdigit():
        return int(text)
    try:
        stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        console.print(f"[red]bad time {text!r}[/red]: use ISO 8601 or unix nanoseconds")
        raise typer.Exit(2) from None
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


@app.command("backtest")
def backtest_cmd(
    config: ConfigOpt = None,
    capture: Annotated[Path | None, typer.Option(help="a capture file to replay")] = None,
    synthetic: Annotated[int | None, typer.Option(help="N synthetic events (seeded)")] = None,
    seed: Annotated[int, typer.Option(help="seed of the synthetic market")] = 7,
    start: _From = None,
    end: _To = None,
    out: Annotated[Path, typer.Option(help="report directory")] = Path("reports/backtest"),
    parity_check: Annotated[
        bool,
        typer.Option(
            "--parity", help=("compare the live agents' outputs on this prefix with the engine")
        ),
    ] = False,
) -> None:
    """Run the live processors over history (topics, a capture file or a synthetic market)."""
    from algostream.backtest.run import (
        MD_INPUTS,
        decode_topic_record,
        parity,
        records_from_capture,
        run_backtest,
    )
    from algostream.backtest.source import read_range
    from algostream.backtest.synthetic import synthetic_frames

    settings = settings_or_exit(config)
    if parity_check:
        reports = asyncio.run(parity(settings, parse_time(start), parse_time(end)))
        for rep in reports:
            status = "same" if rep.first_difference is None else "DIFFERENT"
            console.print(f"{rep.topic}: live {rep.live}, engine {rep.engine}: {status}")
            if rep.first_difference:
                console.print(rep.first_difference)
        raise typer.Exit(0 if all(r.first_difference is None for r in reports) else 1)
    inputs: list[Record]
    if capture is not None:
        inputs = records_from_capture(capture)
    elif synthetic is not None:
        inputs = [*synthetic_frames(tuple(settings.market_data.symbols), seed, synthetic)]
    else:
        topic_records = asyncio.run(
            read_range(settings.kafka, MD_INPUTS, parse_time(start), parse_time(end))
        )
        inputs = [decode_topic_record(r) for r in topic_records]
    result, report = run_backtest(settings, inputs, out)
    console.print(f"outputs: {result.counts}")
    if report is None:
        console.print("no P&L records: no trades in this range")
        return
    console.print(report.to_json())
    console.print(f"report: {out}/report.html, {out}/equity.png, {out}/summary.json")


@app.command("replay")
def replay_cmd(
    target_prefix: Annotated[str, typer.Option("--to-prefix", help="e.g. replay1.")],
    config: ConfigOpt = None,
    start: _From = None,
    end: _To = None,
    speed: Annotated[str, typer.Option(help="1, 10, ... or max")] = "max",
) -> None:
    """Re-publish md.book/md.trades of a time range into another topic prefix."""
    from algostream.backtest.run import replay

    settings = settings_or_exit(config)
    pace = None if speed == "max" else float(speed)
    stats = asyncio.run(replay(settings, target_prefix, parse_time(start), parse_time(end), pace))
    console.print(
        f"replayed {stats.records} records into {target_prefix}* in "
        f"{stats.seconds:.1f}s; run workers with "
        f"ALGOSTREAM__KAFKA__TOPIC_PREFIX={target_prefix} to process them"
    )


@capture_app.command("export")
def capture_export(
    out: Annotated[Path, typer.Option(help="file to write (.jsonl.gz)")],
    config: ConfigOpt = None,
    start: _From = None,
    end: _To = None,
    symbols: Annotated[list[str] | None, typer.Option(help="symbols, e.g. BTCUSDT")] = None,
    topics: Annotated[list[str] | None, typer.Option(help="topics to export")] = None,
) -> None:
    """Export md.raw/md.trades/md.book of a time range to a compressed capture file."""
    from algostream.backtest.run import export_capture

    settings = settings_or_exit(config)
    n = asyncio.run(
        export_capture(
            settings,
            out,
            topics or ["md.raw", "md.trades", "md.book"],
            parse_time(start),
            parse_time(end),
            symbols or (),
        )
    )
    console.print(f"wrote {n} records to {out}")


@capture_app.command("import")
def capture_import(
    path: Annotated[Path, typer.Argument(help="capture file")],
    config: ConfigOpt = None,
    prefix: Annotated[str | None, typer.Option(help="topic prefix to load into")] = None,
) -> None:
    """Load a capture file back into topics."""
    from algostream.backtest.run import import_capture

    n = asyncio.run(import_capture(settings_or_exit(config), path, prefix))
    console.print(f"loaded {n} records")


@model_app.command("train")
def model_train(
    out: Annotated[Path, typer.Option(help="model file (.skops)")] = Path("models/ml_model.skops"),
    config: ConfigOpt = None,
    capture: Annotated[Path | None, typer.Option(help="history from a capture file")] = None,
    synthetic: Annotated[int | None, typer.Option(help="N synthetic events instead")] = None,
    horizon: Annotated[int, typer.Option(help="bars ahead to predict")] = 5,
    estimator: Annotated[str, typer.Option(help="logistic | gradient_boosting")] = "logistic",
) -> None:
    """Train the model strategy's classifier on bar features from history; save with skops."""
    import pandas as pd

    from algostream.backtest.engine import BacktestEngine
    from algostream.backtest.run import MD_INPUTS, decode_topic_record, records_from_capture
    from algostream.backtest.source import read_range
    from algostream.backtest.synthetic import synthetic_frames
    from algostream.model.records import FeatureVector
    from algostream.signals.model import train_model

    settings = settings_or_exit(config)
    inputs: list[Record]
    if capture is not None:
        inputs = records_from_capture(capture)
    elif synthetic is not None:
        inputs = [*synthetic_frames(tuple(settings.market_data.symbols), 7, synthetic)]
    else:
        inputs = [
            decode_topic_record(r) for r in asyncio.run(read_range(settings.kafka, MD_INPUTS))
        ]
    fvs = [
        f
        for f in BacktestEngine(settings).run(inputs).on("features")
        if isinstance(f, FeatureVector)
    ]
    if not fvs:
        console.print("[red]no bars in that history[/red]: nothing to train on")
        raise typer.Exit(1)
    inst = max({f.instrument for f in fvs}, key=lambda i: sum(f.instrument == i for f in fvs))
    rows = [f for f in fvs if f.instrument == inst]
    frame = pd.DataFrame([f.values for f in rows])
    frame["close"] = [float(f.close) for f in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    report = train_model(frame, horizon, out, estimator=estimator)  # type: ignore[arg-type]
    console.print(f"trained on {inst}: {report}")
