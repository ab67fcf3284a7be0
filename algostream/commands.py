"""Runtime commands registered on the CLI: worker, control, sim, ingest, demo, ..."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from algostream.cli import ConfigOpt, app, console, settings_or_exit
from algostream.model.enums import ControlAction
from algostream.model.records import OrderEvent, OrderRejected, Record

if TYPE_CHECKING:
    from algostream.backtest.engine import EncodedBook
    from algostream.config import Settings

control_app = typer.Typer(
    help="Operator commands to the risk and execution agents (control topic).", no_args_is_help=True
)
app.add_typer(control_app, name="control")


@app.command("worker")
def worker(
    role: Annotated[str, typer.Argument(help="a role of workers.layout or workers.agents")],
    config: ConfigOpt = None,
    web_port: Annotated[int | None, typer.Option(help="Faust web port")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="/metrics port (0: any)")] = None,
) -> None:
    """Run the stream agents of one worker role (Faust worker; scale out by running more)."""
    from streams.worker import RoleError, agent_modules, run_worker

    settings = settings_or_exit(config)
    try:
        agent_modules(settings, role)
    except RoleError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from exc
    run_worker(settings, role, web_port=web_port, metrics_port=metrics_port)


def _control(
    action: ControlAction,
    instrument: str,
    reason: str,
    actor: str,
    config: Path | None,
    strategy: str | None = None,
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
    known = [spec.id for spec in settings.signal.specs()]
    if strategy is not None and strategy not in known:
        console.print(
            f"[red]--strategy {strategy!r}: not a strategy of this deployment {known}[/red]"
        )
        raise typer.Exit(2)
    now = time.time_ns()
    unsigned = ControlCommand(
        instrument=instrument,
        ts_event=now,
        ts_init=now,
        record_id=derive_id("control", action.value, instrument, strategy or "", now),
        lineage_id="operator",
        action=action,
        actor=actor,
        reason=reason,
        strategy=strategy,
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
    scope = instrument if strategy is None else f"strategy {strategy} ({instrument})"
    console.print(f"{action.value} {scope} sent by {actor}: {reason}")


_Instrument = Annotated[str, typer.Option(help="VENUE:SYMBOL, or ALL:* for every instrument")]
_Reason = Annotated[str, typer.Option(help="why (recorded in risk.events)")]
_Actor = Annotated[str, typer.Option(help="who (recorded in risk.events)")]
_Strategy = Annotated[
    str | None,
    typer.Option(help="only this strategy (an id of signal.strategies); the others trade on"),
]


def _control_command(action: ControlAction, doc: str) -> None:
    """``algostream control <action>``: one operator command on ``control``."""

    def command(
        reason: _Reason,
        instrument: _Instrument = "ALL:*",
        actor: _Actor = "operator",
        config: ConfigOpt = None,
        strategy: _Strategy = None,
    ) -> None:
        _control(action, instrument, reason, actor, config, strategy)

    command.__doc__ = doc
    control_app.command(action.value.lower())(command)


for _action, _doc in (
    (ControlAction.HALT, "Kill switch: reject every new order."),
    (ControlAction.REDUCE, "Only allow orders that reduce exposure."),
    (ControlAction.RESUME, "Back to ACTIVE (book-integrity problems still hold until resynced)."),
    (ControlAction.FLATTEN, "Close every open position with market orders, then stay REDUCING."),
):
    _control_command(_action, _doc)


@app.command("sim")
def sim(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="port (0: any free port)")] = None,
    rate: Annotated[float | None, typer.Option(help="market events per second")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed (same seed, same market)")] = None,
    capture: Annotated[str | None, typer.Option(help="play back a recorded .ws capture")] = None,
    metrics_port: Annotated[
        int | None, typer.Option(help="serve /metrics on this port (off if not given)")
    ] = None,
    batch_depth: Annotated[
        bool | None,
        typer.Option(help="depth messages per 100 ms/1 s as Binance (--no-: one per event)"),
    ] = None,
) -> None:
    """Run the exchange simulator: Binance + Coinbase WebSocket and REST on one port."""
    import os

    from algostream.sim.server import run_simulator
    from algostream.sim.trading import trading_setup

    settings = settings_or_exit(config)
    s = settings.sim
    if metrics_port is not None:  # the process' own metrics, for compose's Prometheus
        from algostream.observability.metrics import start_metrics_server

        start_metrics_server(metrics_port, addr=settings.observability.metrics_host)
    setup = []
    key, secret = os.environ.get("ALGOSTREAM_API_KEY"), os.environ.get("ALGOSTREAM_API_SECRET")
    if key and secret:  # serve the signed order API only with credentials to check against
        from algostream.sim.usdm_trading import usdm_trading_setup

        setup.append(trading_setup(key, secret, balances=s.balances))
        setup.append(usdm_trading_setup(key, secret))
    cb_name = os.environ.get("ALGOSTREAM_COINBASE_KEY_NAME")
    cb_key = os.environ.get("ALGOSTREAM_COINBASE_PRIVATE_KEY")
    if cb_name and cb_key:  # Coinbase order entry checks JWTs with the key's public half
        from algostream.sim.coinbase_trading import coinbase_trading_setup, public_key_of

        setup.append(coinbase_trading_setup(cb_name, public_key_of(cb_key), balances=s.balances))
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
                batch_depth=s.batch_depth if batch_depth is None else batch_depth,
                funding_interval_ms=s.funding_interval_s * 1000,
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
    shard: Annotated[
        str | None,
        typer.Option(help="K/N: ingest shard K of N of market_data.symbols (README: sharding)"),
    ] = None,
) -> None:
    """Connect to the configured exchange (the simulator by default) and write md.* topics."""
    from algostream.ingest.run import run_ingest
    from algostream.ingest.shard import parse_shard

    settings = settings_or_exit(config)
    if shard is not None:
        try:
            parse_shard(shard)
        except ValueError as exc:
            console.print(f"[red]--shard: {exc}[/red]")
            raise typer.Exit(2) from exc
        md = settings.market_data.model_copy(update={"shard": shard})
        settings = settings.model_copy(update={"market_data": md})
    run_ingest(settings, metrics_port)


@app.command("notify")
def notify_cmd(config: ConfigOpt = None) -> None:
    """Send breaker trips, HALTED/REDUCING, feed integrity events, large fills and the daily
    P&L summary to the webhooks of ``notify.webhooks`` (its own consumer group)."""
    import signal

    from algostream.notify import run_notifier
    from algostream.observability.logging import configure_logging, register_secrets_from

    settings = settings_or_exit(config)
    if not settings.notify.webhooks:
        console.print("[red]notify.webhooks is empty: nothing to send to[/red]")
        raise typer.Exit(2)
    configure_logging(settings.observability)
    register_secrets_from(settings)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_notifier(settings, stop)

    asyncio.run(main())


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


@app.command("status")
def status_cmd(config: ConfigOpt = None) -> None:
    """Each strategy's state, positions and P&L, and every worker group's consumer lag."""
    from rich.table import Table

    from algostream.status import collect

    settings = settings_or_exit(config)
    strategies, lags = asyncio.run(collect(settings))
    table = Table(title=f"strategies (account {settings.risk.account})")
    for col in ("strategy", "state", "positions", "equity", "realized", "unrealized", "drawdown"):
        table.add_column(col)
    for st in strategies:
        name = (
            "(account)" if st.strategy == "*" else st.strategy + (" [shadow]" if st.shadow else "")
        )
        positions = ", ".join(f"{i} {q}" for i, q in st.positions.items()) or "flat"
        state = st.state.value + (
            f" ({st.reason})" if st.reason and st.state.value != "ACTIVE" else ""
        )
        cells = [st.equity, st.realized_pnl, st.unrealized_pnl, st.drawdown]
        table.add_row(name, state, positions, *("-" if c is None else str(c) for c in cells))
    console.print(table)
    lag_table = Table(title="consumer lag")
    for col in ("group", "topic", "partitions", "lag"):
        lag_table.add_column(col)
    for lag in lags:
        lag_table.add_row(lag.group, lag.topic, str(lag.partitions), str(lag.lag))
    console.print(lag_table if lags else "no consumer groups of this deployment on the broker")


shadow_app = typer.Typer(
    help="Shadow strategies: paper trading on the live feed beside the live strategies.",
    no_args_is_help=True,
)
app.add_typer(shadow_app, name="shadow")


@shadow_app.command("run")
def shadow_run(
    config: ConfigOpt = None,
    from_beginning: Annotated[
        bool, typer.Option(help="a new consumer group starts at the topics' start, not end")
    ] = False,
    metrics_port: Annotated[int, typer.Option(help="/metrics port (0: any)")] = 9408,
) -> None:
    """Run the shadow strategies (shadow: true) on the live book tops and bars; orders go
    to shadow.* topics and are paper-filled against the live book, never to the venue."""
    import signal

    from algostream.config import ConfigError
    from algostream.observability.logging import configure_logging, register_secrets_from
    from algostream.observability.metrics import preregister, start_metrics_server
    from algostream.shadow import run_shadow

    settings = settings_or_exit(config)
    configure_logging(settings.observability)
    register_secrets_from(settings)
    shadow = [spec.id for spec in settings.shadow_specs()]
    preregister(accounts=[settings.risk.account], strategies=shadow, shadow=shadow)
    port = start_metrics_server(metrics_port, addr=settings.observability.metrics_host)
    console.print(f"shadow worker: metrics on port {port} (/metrics)")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_shadow(settings, stop, offset_reset="earliest" if from_beginning else "latest")

    try:
        asyncio.run(main())
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@shadow_app.command("report")
def shadow_report(
    shadow: Annotated[str, typer.Option(help="the shadow strategy's id")],
    live: Annotated[str, typer.Option(help="the live strategy's id to compare with")],
    from_: _From = None,
    to: _To = None,
    config: ConfigOpt = None,
) -> None:
    """Signals, fills and P&L of a shadow strategy and a live one, side by side."""
    from rich.table import Table

    from algostream.config import ConfigError
    from algostream.shadow import report

    settings = settings_or_exit(config)
    try:
        live_sum, shadow_sum = asyncio.run(
            report(settings, shadow, live, parse_time(from_), parse_time(to))
        )
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    table = Table(title=f"shadow {shadow} vs live {live}")
    table.add_column("")
    table.add_column(f"live: {live}", justify="right")
    table.add_column(f"shadow: {shadow}", justify="right")
    for (name, a), b in zip(live_sum.rows().items(), shadow_sum.rows().values(), strict=True):
        table.add_row(name, a, b)
    console.print(table)


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
    sweep: Annotated[
        list[str] | None,
        typer.Option(help="section.key=v1,v2,... (repeat for a grid), e.g. signal.rsi_window=6,10"),
    ] = None,
    metric: Annotated[str, typer.Option(help="what --sweep ranks by")] = "total_return",
    jobs: Annotated[int, typer.Option(min=1, help="--sweep worker processes")] = 2,
    walk_forward: Annotated[
        str | None, typer.Option(help="TRAIN/TEST windows for --sweep, e.g. 30d/7d")
    ] = None,
    bars: Annotated[
        Path | None, typer.Option(help="an OHLCV bar file (CSV: time, Open..Volume)")
    ] = None,
    bars_format: Annotated[
        str, typer.Option(help="--bars: a history format (ohlcv, binance-spot-klines, ...)")
    ] = "ohlcv",
    instrument: Annotated[str, typer.Option(help="--bars: the bars' VENUE:SYMBOL")] = "BARS:ASSET",
    interval: Annotated[
        str | None, typer.Option(help="--bars: 1m, 1h, 1d... (default: inferred)")
    ] = None,
    fill_at: Annotated[
        str, typer.Option(help="--bars: market orders at next_open or close")
    ] = "next_open",
    close_at_end: Annotated[
        bool, typer.Option("--close-at-end", help="close open positions at the end of the input")
    ] = False,
    lot: Annotated[
        str, typer.Option(help="--bars: quantity step (1 for whole shares)")
    ] = "0.00001",
    funding_history: Annotated[
        Path | None,
        typer.Option(help="futures: funding CSV (symbol, fundingTime, fundingRate, markPrice)"),
    ] = None,
) -> None:
    """Run the live processors over history (topics, a capture file, a synthetic market or
    bars)."""
    from algostream.backtest.errors import BacktestError
    from algostream.backtest.run import (
        backtest_input,
        funding_marks,
        md_inputs,
        parity,
        records_from_capture,
        run_backtest,
        with_marks,
    )
    from algostream.backtest.source import read_range
    from algostream.backtest.synthetic import synthetic_frames

    settings = settings_or_exit(config)
    if bars is not None:
        _bar_backtest(
            settings,
            (bars, bars_format),
            instrument,
            interval,
            fill_at,
            close_at_end,
            lot,
            out,
            funding_history,
        )
        return
    if parity_check:
        reports = asyncio.run(parity(settings, parse_time(start), parse_time(end)))
        for rep in reports:
            status = "same" if rep.first_difference is None else "DIFFERENT"
            console.print(f"{rep.topic}: live {rep.live}, engine {rep.engine}: {status}")
            if rep.first_difference:
                console.print(rep.first_difference)
        raise typer.Exit(0 if all(r.first_difference is None for r in reports) else 1)
    inputs: list[Record | EncodedBook]
    if capture is not None:
        inputs = records_from_capture(capture)
    elif synthetic is not None:
        inputs = [*synthetic_frames(tuple(settings.market_data.symbols), seed, synthetic)]
    else:
        topic_records = asyncio.run(
            read_range(settings.kafka, md_inputs(settings), parse_time(start), parse_time(end))
        )
        inputs = [backtest_input(r) for r in topic_records]
    if funding_history is not None:
        try:
            inputs = with_marks(inputs, funding_marks(funding_history))
        except BacktestError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    if sweep:
        from algostream.backtest.sweep_cli import sweep_command

        code = sweep_command(settings, inputs, sweep, metric, jobs, walk_forward, out, console)
        raise typer.Exit(code)
    result, report = run_backtest(settings, inputs, out, close_at_end=close_at_end)
    console.print(f"outputs: {result.counts}")
    if report is None:
        console.print("no P&L records: no trades in this range")
        return
    from algostream.backtest.tearsheet import report_table

    console.print(report_table(report))
    console.print(f"report: {out}/report.html, {out}/equity.png, {out}/summary.json")


def _bar_backtest(
    settings: Settings,
    source: tuple[Path, str],
    instrument: str,
    interval: str | None,
    fill_at: str,
    close_at_end: bool,
    lot: str,
    out: Path,
    funding_history: Path | None = None,
) -> None:
    from decimal import Decimal, InvalidOperation

    from algostream.backtest.bar_input import load_bars
    from algostream.backtest.bars import BarBacktest, FillModel
    from algostream.backtest.errors import BacktestError
    from algostream.backtest.report import ReportInputs, write_report
    from algostream.backtest.run import funding_marks
    from algostream.marketdata.bars import INTERVAL_NS
    from algostream.signals.errors import SignalError

    if fill_at not in ("next_open", "close"):
        console.print(f"[red]--fill-at {fill_at!r}[/red]: use next_open or close")
        raise typer.Exit(2)
    try:
        step = Decimal(lot)
    except InvalidOperation:
        step = Decimal(0)
    if not step.is_finite() or step <= 0:
        console.print(f"[red]--lot {lot!r}[/red]: expected a number > 0")
        raise typer.Exit(2)
    fill = FillModel.from_settings(
        settings,
        market=fill_at,
        step=step,
        close_at_end="close" if close_at_end else "off",
    )
    try:
        inputs = list(load_bars(source[0], instrument, interval, fmt=source[1]))
        marks = funding_marks(funding_history) if funding_history is not None else []
        result = BarBacktest(settings, fill).run(inputs, marks)
    except (BacktestError, SignalError, OSError, ValueError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"bars: {result.bars}, outputs: {result.counts}")
    if not result.equity or not inputs:
        return
    fills = [e for e in result.on("orders.events") if isinstance(e, OrderEvent)]
    _print_rejections([r for r in result.on("orders.rejected") if isinstance(r, OrderRejected)])
    period = INTERVAL_NS[inputs[0].interval]
    closes = [(bar.ts_event, bar.close) for bar in inputs]  # buy and hold of the same bars
    made = ReportInputs(
        equity=result.equity,
        fills=fills,
        period_ns=period,
        prices=closes,
        price_instrument=inputs[0].instrument,
    )
    report = write_report(out, made)
    from algostream.backtest.tearsheet import report_table

    console.print(report_table(report))
    console.print(f"report: {out}/report.html, {out}/equity.png, {out}/summary.json")


def _print_rejections(rejected: list[OrderRejected]) -> None:
    """Why the risk gate said no, by reason (a backtest whose every order is rejected
    says which limit to widen instead of reporting no trades)."""
    from collections import Counter

    counts = Counter(r.reason for r in rejected)
    for reason, count in counts.most_common():
        first = next(r for r in rejected if r.reason == reason)
        console.print(f"[yellow]{count} orders rejected {reason}[/yellow]: {first.message}")


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
    from algostream.backtest.run import MD_INPUTS, backtest_input, records_from_capture
    from algostream.backtest.source import read_range
    from algostream.backtest.synthetic import synthetic_frames
    from algostream.model.records import FeatureVector
    from algostream.signals.model import train_model

    settings = settings_or_exit(config)
    inputs: list[Record | EncodedBook]
    if capture is not None:
        inputs = records_from_capture(capture)
    elif synthetic is not None:
        inputs = [*synthetic_frames(tuple(settings.market_data.symbols), 7, synthetic)]
    else:
        inputs = [backtest_input(r) for r in asyncio.run(read_range(settings.kafka, MD_INPUTS))]
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


@app.command("health")
def health(
    port: Annotated[
        int, typer.Option(envvar="METRICS_PORT", help="the process' /metrics port")
    ] = 9401,
    host: Annotated[str, typer.Option(help="the process' metrics address")] = "127.0.0.1",
) -> None:
    """Exit 0 when the process on PORT is healthy (compose's healthcheck), else 1."""
    from algostream.observability.probe import check

    problems = check(port, host)
    for problem in problems:
        console.print(f"unhealthy: {problem}")
    raise typer.Exit(1 if problems else 0)
