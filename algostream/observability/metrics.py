"""Every metric the platform exposes, in one registry (:data:`REGISTRY`).

Names are ``algostream_<what>_<unit>``; counters end in ``_total``. Label names are the
same everywhere: ``instrument`` (``BINANCE:BTCUSDT``), ``exchange`` (``binance``),
``agent`` (a worker role or agent name), ``account``, ``topic``.

Serve it with :func:`start_metrics_server` (own thread, any process) or from an aiohttp /
Faust web server with :func:`metrics_handler` / :func:`add_faust_metrics_page`.
Time a block with :func:`observe`:

>>> with observe(RISK_CHECK_SECONDS, instrument="BINANCE:BTCUSDT"):
...     pass
>>> REGISTRY.get_sample_value(
...     "algostream_risk_check_seconds_count", {"instrument": "BINANCE:BTCUSDT"}) >= 1
True
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer, make_server

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.exposition import ThreadingWSGIServer, choose_encoder, make_wsgi_app

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "BOOK_RESYNCS",
    "BOOK_UPDATE_SECONDS",
    "CONSUMER_LAG",
    "DLQ_RECORDS",
    "EQUITY",
    "EXPOSURE_NOTIONAL",
    "FEATURE_COMPUTE_SECONDS",
    "FEED_STALENESS_SECONDS",
    "FILLS",
    "FUNDING_PAID",
    "GC_PAUSE_SECONDS",
    "KAFKA_REACHABLE",
    "LATENCY_BUCKETS",
    "LIQUIDATED_NOTIONAL",
    "LIQUIDATIONS",
    "LOSS_THRESHOLD",
    "MARGIN_USED",
    "MESSAGES_IN",
    "MESSAGES_OUT",
    "ORDERS_APPROVED",
    "ORDERS_REJECTED",
    "ORDER_SUBMIT_SECONDS",
    "POSITION_NOTIONAL",
    "POSITION_QUANTITY",
    "REALIZED_PNL",
    "REGISTRY",
    "RISK_CHECK_SECONDS",
    "SEQUENCE_GAPS",
    "SIGNALS",
    "STAGES",
    "STAGE_LATENCY_SECONDS",
    "STRATEGY_DRAWDOWN",
    "STRATEGY_EQUITY",
    "STRATEGY_POSITION",
    "STRATEGY_REALIZED_PNL",
    "STRATEGY_STATE",
    "STRATEGY_TRADES",
    "TICK_TO_TRADE_SECONDS",
    "TRADING_STATE",
    "UNREALIZED_PNL",
    "WORKER_UP",
    "WS_RECONNECTS",
    "MetricsServer",
    "TradingStateValue",
    "add_faust_metrics_page",
    "metrics_handler",
    "observe",
    "preregister",
    "render",
    "serve_metrics",
    "start_metrics_server",
]

#: The one registry every algostream metric lives in (plus process/GC/platform collectors).
REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)
GCCollector(registry=REGISTRY)

#: Latency buckets from 5 µs to 10 s (roughly 1-2.5-5 per decade).
LATENCY_BUCKETS: tuple[float, ...] = (
    0.000005,
    0.00001,
    0.000025,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)

#: Pipeline stages of ``algostream_stage_latency_seconds{stage}`` (tick order).
STAGES: tuple[str, ...] = (
    "ingest",
    "book",
    "bars",
    "features",
    "signals",
    "sizing",
    "risk",
    "execution",
)


class TradingStateValue(IntEnum):
    """Gauge value of ``algostream_trading_state`` (mirrors ``model.enums.TradingState``)."""

    ACTIVE = 0
    REDUCING = 1
    HALTED = 2


def _histogram(name: str, doc: str, labels: tuple[str, ...]) -> Histogram:
    return Histogram(name, doc, labels, registry=REGISTRY, buckets=LATENCY_BUCKETS)


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


def _gauge(name: str, doc: str, labels: tuple[str, ...]) -> Gauge:
    return Gauge(name, doc, labels, registry=REGISTRY)


# ------------------------------------------------------------------ latency histograms
BOOK_UPDATE_SECONDS = _histogram(
    "algostream_book_update_seconds", "Time to apply one book snapshot/delta.", ("instrument",)
)
FEATURE_COMPUTE_SECONDS = _histogram(
    "algostream_feature_compute_seconds", "Time to compute one feature vector.", ("instrument",)
)
RISK_CHECK_SECONDS = _histogram(
    "algostream_risk_check_seconds",
    "Time of the pre-trade risk check of one order.",
    ("instrument",),
)
ORDER_SUBMIT_SECONDS = _histogram(
    "algostream_order_submit_seconds", "Time to submit one order to the venue.", ("exchange",)
)
TICK_TO_TRADE_SECONDS = _histogram(
    "algostream_tick_to_trade_seconds",
    "From the exchange event of the tick that caused an order to the order's submission.",
    ("instrument",),
)
STAGE_LATENCY_SECONDS = _histogram(
    "algostream_stage_latency_seconds",
    "Processing time of one record per pipeline stage.",
    ("stage",),
)
GC_PAUSE_SECONDS = _histogram(
    "algostream_gc_pause_seconds",
    "Time the cyclic garbage collector stopped the process for, per collection.",
    ("generation",),
)

# ------------------------------------------------------------------ counters
MESSAGES_IN = _counter("algostream_messages_in_total", "Records consumed.", ("agent", "topic"))
MESSAGES_OUT = _counter("algostream_messages_out_total", "Records produced.", ("agent", "topic"))
SEND_FAILURES = _counter(
    "algostream_send_failures_total", "Records a worker's producer failed to deliver.", ("agent",)
)
SEEK_BACKS = _counter(
    "algostream_seek_backs_total",
    "Times an agent found records skipped by Faust's consumer around a rebalance and sought back.",
    ("agent",),
)
RECOVERY_RESEEKS = _counter(
    "algostream_recovery_reseeks_total",
    "Changelog partitions sought back because table recovery stalled on records it had lost.",
)
DLQ_RECORDS = _counter(
    "algostream_dlq_records_total",
    "Records sent to the dead-letter topic.",
    ("agent", "topic", "error_type"),
)
ORDERS_REJECTED = _counter(
    "algostream_orders_rejected_total", "Orders denied by risk, by reason.", ("reason",)
)
CONTROL_REFUSED = _counter(
    "algostream_control_refused_total",
    "Control commands the risk gate refused (unsigned, forged, stale, replayed, no_key).",
    ("reason",),
)
LATE_TRADES = _counter(
    "algostream_late_trades_total",
    "Trades that arrived after their bar closed: not in the bar (kept in dlq).",
    ("instrument", "interval"),
)
FENCED = _counter(
    "algostream_fenced_total",
    "Times this trading worker found its account's transactional producer fenced.",
)
FENCED_DROPS = _counter(
    "algostream_fenced_drops_total",
    "Trading outputs not written: this worker does not own the account (or was fenced).",
)
TXN_COMMIT_SECONDS = _histogram(
    "algostream_txn_commit_seconds",
    "Commit of the trading worker's account transaction (outputs + proposal offsets).",
    (),
)
ORDERS_APPROVED = _counter("algostream_orders_approved_total", "Orders approved by risk.")
FILLS = _counter("algostream_fills_total", "Fills received.", ("instrument", "side"))
WS_RECONNECTS = _counter(
    "algostream_ws_reconnects_total", "Exchange websocket reconnects.", ("exchange",)
)
BOOK_RESYNCS = _counter(
    "algostream_book_resyncs_total", "Order book resyncs from a snapshot.", ("instrument",)
)
SEQUENCE_GAPS = _counter(
    "algostream_sequence_gaps_total", "Exchange sequence gaps detected.", ("instrument",)
)
SIGNALS = _counter("algostream_signals_total", "Signals emitted.", ("strategy", "side"))

# ------------------------------------------------------------------ gauges
POSITION_QUANTITY = _gauge(
    "algostream_position_quantity", "Signed position quantity.", ("account", "instrument")
)
UNREALIZED_PNL = _gauge("algostream_unrealized_pnl", "Unrealized P&L (quote).", ("account",))
REALIZED_PNL = _gauge("algostream_realized_pnl", "Realized P&L (quote).", ("account",))
EXPOSURE_NOTIONAL = _gauge(
    "algostream_exposure_notional", "Gross notional exposure (quote).", ("account",)
)
EQUITY = _gauge("algostream_equity", "Account equity (quote).", ("account",))
#: every venue and product (``BINANCE``, ``BINANCE_USDM``, ``COINBASE``); side LONG/SHORT
POSITION_NOTIONAL = _gauge(
    "algostream_position_notional",
    "Absolute position notional at the mark, by venue and side (quote).",
    ("account", "venue", "side", "instrument"),
)
MARGIN_USED = _gauge(
    "algostream_margin_used",
    "Futures initial margin in use: notional at the mark / leverage (quote).",
    ("account", "instrument"),
)
FUNDING_PAID = _gauge(
    "algostream_funding_paid",
    "Futures funding paid so far, net (quote; negative: received).",
    ("account", "instrument"),
)
#: the market's liquidation orders (Binance USD-M ``forceOrder``, ``md.liquidations``)
LIQUIDATIONS = _counter(
    "algostream_liquidations_total",
    "Liquidation orders seen on the market (side of the order: SELL closes a long).",
    ("instrument", "side"),
)
LIQUIDATED_NOTIONAL = _counter(
    "algostream_liquidated_notional_total",
    "Notional of the market's liquidation orders (quote: quantity * average or limit price).",
    ("instrument",),
)
#: per strategy (``signal.strategies``); ``mode``: ``live`` or ``shadow``
STRATEGY_EQUITY = _gauge(
    "algostream_strategy_equity",
    "A strategy's equity: starting equity + its own P&L (quote).",
    ("account", "strategy", "mode"),
)
STRATEGY_DRAWDOWN = _gauge(
    "algostream_strategy_drawdown",
    "A strategy's drawdown from its peak equity (quote).",
    ("account", "strategy", "mode"),
)
STRATEGY_REALIZED_PNL = _gauge(
    "algostream_strategy_realized_pnl",
    "A strategy's realized P&L (quote).",
    ("account", "strategy", "mode"),
)
STRATEGY_POSITION = _gauge(
    "algostream_strategy_position_quantity",
    "A strategy's own signed position.",
    ("account", "strategy", "instrument", "mode"),
)
STRATEGY_TRADES = _counter(
    "algostream_strategy_trades_total",
    "Fills that closed (part of) a strategy's position, by result (win/loss/flat).",
    ("strategy", "result", "mode"),
)
STRATEGY_STATE = _gauge(
    "algostream_strategy_state", "A strategy's state: 0 ACTIVE, 2 HALTED.", ("strategy",)
)
TRADING_STATE = _gauge(
    "algostream_trading_state",
    "Trading state: 0 ACTIVE, 1 REDUCING, 2 HALTED.",
    ("account", "instrument"),
)
CONSUMER_LAG = _gauge(
    "algostream_consumer_lag_messages",
    "Records behind the partition end.",
    ("agent", "topic", "partition"),
)
FEED_STALENESS_SECONDS = _gauge(
    "algostream_feed_staleness_seconds",
    "Seconds since the last message of a feed.",
    ("exchange", "instrument"),
)
LOSS_THRESHOLD = _gauge(
    "algostream_loss_threshold",
    "The account's loss limit (risk.max_loss_threshold); the LossNearThreshold alert uses it.",
    ("account",),
)
WORKER_UP = _gauge("algostream_worker_up", "1 while the worker runs its agents.", ("agent",))
STAGE_STALLED = _gauge(
    "algostream_stage_stalled",
    "1 while a stage has input records waiting and has made no progress for workers.stall_after_s.",
    ("agent", "stage"),
)
STAGE_SINCE_PROGRESS = _gauge(
    "algostream_stage_seconds_since_progress",
    "Seconds a stage with input records waiting has made no progress (0 while it keeps up).",
    ("agent", "stage"),
)
KAFKA_CLIENT_ERRORS = _counter(
    "algostream_kafka_client_errors_total",
    "Warnings and errors of the Kafka client libraries (failed connections, requests and "
    "heartbeats: the retries during a broker outage).",
    ("logger",),
)
KAFKA_REACHABLE = _gauge(
    "algostream_kafka_reachable",
    "0 while the process cannot reach its Kafka cluster: before it first answered (start-up "
    "waits for it) and while the client libraries report errors (a broker outage); else 1.",
    (),
)


# ------------------------------------------------------------------ helpers
_CHILDREN: dict[tuple[Any, tuple[tuple[str, str], ...]], Any] = {}


def child(metric: Any, **labels: str) -> Any:
    """``metric.labels(**labels)``, looked up once per label set: ``labels()`` checks and
    locks on every call (~20% of the ingestor under py-spy when called per frame), so the
    hot paths take their children from here."""
    key = (metric, tuple(labels.items()))
    found = _CHILDREN.get(key)
    if found is None:
        found = _CHILDREN[key] = metric.labels(**labels)
    return found


def observe_all(histogram: Any, amounts: list[float]) -> None:
    """``histogram.observe(a)`` for each of ``amounts`` (a histogram child, no exemplars),
    with one lock per touched bucket instead of two per value: the book stage times every
    update and observes them once per batch (~2 µs an update saved). Same counts and sum as
    ``observe`` one by one (tested on the exposition)."""
    if not amounts:
        return
    histogram._raise_if_not_observable()
    bounds, buckets = histogram._upper_bounds, histogram._buckets
    counts: dict[int, int] = {}
    for amount in amounts:
        i = bisect_left(bounds, amount)  # the first bound >= amount: observe's bucket
        counts[i] = counts.get(i, 0) + 1
    histogram._sum.inc(sum(amounts))
    for i, n in counts.items():
        if i < len(buckets):  # above +Inf only for NaN, which observe also counts nowhere
            buckets[i].inc(n)


@contextmanager
def observe(histogram: Histogram, **labels: str) -> Iterator[None]:
    """Observe the wall time of the ``with`` block (``perf_counter_ns``) in ``histogram``.

    The observation is recorded even if the block raises.
    """
    child = histogram.labels(**labels) if labels else histogram
    start = time.perf_counter_ns()
    try:
        yield
    finally:
        child.observe((time.perf_counter_ns() - start) / 1e9)


def preregister(
    *,
    instruments: Iterable[str] = (),
    accounts: Iterable[str] = (),
    exchanges: Iterable[str] = (),
    agents: Iterable[str] = (),
    strategies: Iterable[str] = (),
    reject_reasons: Iterable[str] = (),
    shadow: Iterable[str] = (),
) -> None:
    """Create the label children a worker will use, so queries see zeros, not nothing.

    Counters appear with value 0; gauges with their current value (0 if never set).
    """
    instruments, accounts, shadow = tuple(instruments), tuple(accounts), tuple(shadow)
    for stage in STAGES:
        STAGE_LATENCY_SECONDS.labels(stage=stage)
    for generation in ("0", "1", "2"):
        GC_PAUSE_SECONDS.labels(generation=generation)
    for instrument in instruments:
        for metric in (BOOK_RESYNCS, SEQUENCE_GAPS, BOOK_UPDATE_SECONDS, FEATURE_COMPUTE_SECONDS):
            metric.labels(instrument=instrument)
        for hist in (RISK_CHECK_SECONDS, TICK_TO_TRADE_SECONDS):
            hist.labels(instrument=instrument)
        for side in ("BUY", "SELL"):
            FILLS.labels(instrument=instrument, side=side)
        for account in accounts:
            POSITION_QUANTITY.labels(account=account, instrument=instrument)
            TRADING_STATE.labels(account=account, instrument=instrument)
            venue = instrument.partition(":")[0]
            for held in ("LONG", "SHORT"):
                POSITION_NOTIONAL.labels(
                    account=account, venue=venue, side=held, instrument=instrument
                )
            # futures margin and funding (0 for spot: the panels show every venue)
            MARGIN_USED.labels(account=account, instrument=instrument)
            FUNDING_PAID.labels(account=account, instrument=instrument)
    for account in accounts:
        for gauge in (UNREALIZED_PNL, REALIZED_PNL, EXPOSURE_NOTIONAL, EQUITY):
            gauge.labels(account=account)
    for exchange in exchanges:
        WS_RECONNECTS.labels(exchange=exchange)
        ORDER_SUBMIT_SECONDS.labels(exchange=exchange)
    for agent in agents:
        WORKER_UP.labels(agent=agent)
    for strategy in strategies:
        for side in ("BUY", "SELL"):
            SIGNALS.labels(strategy=strategy, side=side)
        STRATEGY_STATE.labels(strategy=strategy)
        mode = "shadow" if strategy in shadow else "live"
        for result in ("win", "loss", "flat"):
            STRATEGY_TRADES.labels(strategy=strategy, result=result, mode=mode)
        for account in accounts:
            for gauge in (STRATEGY_EQUITY, STRATEGY_DRAWDOWN, STRATEGY_REALIZED_PNL):
                gauge.labels(account=account, strategy=strategy, mode=mode)
    for reason in reject_reasons:
        ORDERS_REJECTED.labels(reason=reason)


def render(accept: str | None = None, registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """The exposition body and its content type, negotiated from an ``Accept`` header."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(registry), content_type


@dataclass
class MetricsServer:
    """A running ``/metrics`` HTTP server on its own daemon thread."""

    port: int
    httpd: WSGIServer = field(repr=False)
    thread: threading.Thread = field(repr=False)

    def close(self) -> None:
        """Stop serving and release the port."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve_metrics(
    port: int = 0, *, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> MetricsServer:
    """Serve ``registry`` over HTTP on ``addr:port`` (0 = ephemeral), and the process's
    health on ``/healthz`` (:mod:`algostream.observability.health`); returns the server."""
    from algostream.observability.health import QuietHandler, with_health

    app = with_health(make_wsgi_app(registry))
    httpd = make_server(addr, port, app, ThreadingWSGIServer, handler_class=QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, name="metrics", daemon=True)
    thread.start()
    return MetricsServer(port=int(httpd.server_address[1]), httpd=httpd, thread=thread)


def start_metrics_server(
    port: int = 0, *, addr: str = "127.0.0.1", registry: CollectorRegistry = REGISTRY
) -> int:
    """Serve ``/metrics`` from a daemon thread; returns the bound port (0 = ephemeral).

    ``addr`` defaults to loopback (``observability.metrics_host``); a container that
    Prometheus scrapes from another one binds ``0.0.0.0`` (docker-compose.yml sets it).
    """
    return serve_metrics(port, addr=addr, registry=registry).port


async def metrics_handler(request: web.Request) -> web.Response:
    """An aiohttp handler serving :data:`REGISTRY` (``app.router.add_get('/metrics', ...)``)."""
    from aiohttp import web

    body, content_type = render(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


def add_faust_metrics_page(app: Any, path: str = "/metrics") -> Any:
    """Register ``path`` on a Faust app's web server (aiohttp driver); returns the view."""

    async def metrics(view: Any, request: web.Request) -> web.Response:
        return await metrics_handler(request)

    return app.page(path)(metrics)
