"""Settings: ``config/system.json`` (the seed's schema) + environment overrides, validated.

Every section is a frozen pydantic model that rejects unknown keys. Environment variables
override file values with ``ALGOSTREAM__<SECTION>__<KEY>`` (e.g.
``ALGOSTREAM__RISK__MAX_POSITION_SIZE=5``). API secrets are read **only** from the
environment (``ALGOSTREAM_API_KEY``, ``ALGOSTREAM_API_SECRET``, or ``*_FILE`` pointing at a
file readable only by its owner) and are :class:`~pydantic.SecretStr`, masked everywhere;
so are the Kafka SASL password and the operator's control key (``ALGOSTREAM_CONTROL_KEY``).

>>> s = load_settings(env={})
>>> s.risk.max_open_positions
5
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from algostream.model.enums import CostMethod
from algostream.model.ids import StrategyId
from algostream.model.records import LiveBarInterval
from algostream.model.values import Money, Quantity

ENV_PREFIX = "ALGOSTREAM__"
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent.parent / "config" / "system.json"
SECRET_NAMES = ("api_key", "api_secret")
SECRET_KEYS = (*SECRET_NAMES, "sasl_password", "control_key")


class ConfigError(Exception):
    """The configuration is invalid: the message names the key and the value."""


class Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MarketDataConfig(Section):
    exchange: Literal["binance", "binance_usdm", "coinbase"] = "binance"
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")
    websocket_url: str = "ws://127.0.0.1:8765/stream"
    rest_url: str = "http://127.0.0.1:8765"
    reconnect_delay_ms: int = Field(default=5000, ge=1)
    max_reconnect_delay_ms: int = Field(default=60000, ge=1)
    stale_after_ms: int = Field(default=5000, ge=1)
    rotate_after_s: int = Field(default=23 * 3600, ge=1)
    snapshot_depth: int = Field(default=1000, ge=5, le=5000)
    book_top_levels: int = Field(default=10, ge=1, le=100)
    bar_intervals: tuple[LiveBarInterval, ...] = ("1s", "1m")
    #: ``md.raw``: the frames of one instrument received within this many ms (at most
    #: ``raw_batch_frames``) are one record (``RawFrame.more``); 0: one record per frame
    raw_batch_ms: int = Field(default=5, ge=0, le=1000)
    #: the ingestor's WebSocket client: ``picows`` (frames parsed in C) or ``websockets``
    ws_client: Literal["picows", "websockets"] = "picows"
    raw_batch_frames: int = Field(default=64, ge=1, le=10_000)
    #: ``"K/N"``: this ingestor takes shard K of N of ``symbols`` (README: sharding; the
    #: ``ingest --shard`` option overrides it); None: every symbol
    shard: str | None = None

    @field_validator("shard")
    @classmethod
    def _shard_is_k_of_n(cls, value: str | None) -> str | None:
        if value is not None:
            from algostream.ingest.shard import parse_shard

            parse_shard(value)
        return value


class RiskConfig(Section):
    max_position_size: Quantity = Decimal("10.0")
    max_notional_exposure: Money = Decimal("100000.0")
    max_open_positions: int = Field(default=5, ge=0)
    stop_loss_percent: Decimal = Decimal("2.0")
    trailing_stop_percent: Decimal = Decimal("1.5")
    enable_circuit_breaker: bool = True
    max_loss_threshold: Money = Decimal("5000.0")
    max_drawdown_percent: Decimal = Decimal("10.0")
    max_order_notional: Money = Decimal("50000.0")
    max_orders_per_second: int = Field(default=20, ge=1)
    #: a proposal older than this (decision time - its ``ts_init``) is refused
    #: ``ORDER_TOO_OLD``: a worker that was paused or behind must not trade on old prices
    #: 0 turns the check off: for replaying history through the live agents (the parity
    #: check), whose proposals carry the history's times, not the wall clock's
    max_order_age_ms: int = Field(default=5000, ge=0, le=3_600_000)
    price_band_percent: Decimal = Decimal("5.0")
    #: a control command is accepted within this long of its ``ts_init`` (either way;
    #: clocks differ) and its nonce only once in that window
    control_window_ms: int = Field(default=30_000, ge=1000, le=3_600_000)
    #: the operator key control commands are signed with (HMAC-SHA256): only from
    #: ``ALGOSTREAM_CONTROL_KEY`` or an owner-only ``ALGOSTREAM_CONTROL_KEY_FILE``
    control_key: SecretStr | None = Field(default=None, min_length=32)
    cost_method: CostMethod = CostMethod.FIFO
    account: str = "paper"
    starting_equity: Money = Decimal("100000.0")
    #: futures (``BINANCE_USDM:*`` instruments): the leverage of every position, at most
    #: the first leverage bracket's maximum (125 on Binance's BTCUSDT)
    leverage: int = Field(default=20, ge=1, le=125)
    #: futures margin mode: ``CROSS`` (the wallet backs every position) or ``ISOLATED``
    margin_mode: Literal["CROSS", "ISOLATED"] = "CROSS"
    #: futures: an order whose liquidation price would be closer than this (percent of
    #: the mark) is refused ``TOO_CLOSE_TO_LIQUIDATION``
    min_liquidation_distance_percent: Decimal = Field(default=Decimal("5"), gt=0, lt=100)
    #: futures, on start: a position the venue reports differently from the ledger is
    #: ``adopt``-ed (an ``orders.events`` FILLED record of the difference, reason
    #: ``POSITION_ADOPTED``), or with ``halt`` trading halts when the difference is above
    #: ``position_mismatch_tolerance`` (base quantity; at or below it, adopted)
    position_mismatch: Literal["adopt", "halt"] = "adopt"
    position_mismatch_tolerance: Quantity = Decimal(0)
    #: futures paper trading: the liquidation clearance fee, percent of the notional at
    #: the liquidation price (0: none charged)
    liquidation_fee_percent: Decimal = Field(default=Decimal(0), ge=0, lt=100)


class ExecutionConfig(Section):
    exchange_api_url: str = "http://127.0.0.1:8765"
    rate_limit_per_second: int = Field(default=10, ge=1)
    retry_attempts: int = Field(default=3, ge=0)
    retry_delay_ms: int = Field(default=1000, ge=0)
    paper_trading: bool = True
    recv_window_ms: int = Field(default=5000, ge=1, le=60000)
    request_timeout_ms: int = Field(default=5000, ge=1)
    fee_rate: Decimal = Decimal("0.001")
    #: bar backtests: adverse slippage on every fill, in basis points of the fill price
    slippage_bps: Decimal = Field(default=Decimal(0), ge=0)
    paper_latency_ms: int = Field(default=0, ge=0)
    #: paper trading: the trading worker executes an approved order from the risk agent's
    #: own task (no Kafka hop); the approval is on ``orders.approved`` first either way
    in_process: bool = True
    #: live orders: the user data stream's WebSocket base (None: exchange_api_url's host,
    #: ws://); Binance: wss://stream.binance.com:9443
    user_stream_url: str | None = None
    #: live orders: poll the venue this often while the user data stream is down
    order_poll_interval_ms: int = Field(default=5000, ge=100)
    #: Binance USD-M stop / take-profit orders: what triggers them, the mark price
    #: (MARK_PRICE) or the last trade price (CONTRACT_PRICE, Binance's default)
    futures_working_type: Literal["MARK_PRICE", "CONTRACT_PRICE"] = "CONTRACT_PRICE"
    #: Coinbase (no stop-market order): an OCO / bracket's stop-loss leg is placed as a
    #: stop-limit whose limit is the stop moved this many basis points against the
    #: position (rounded outward to the product's ``price_increment``)
    coinbase_stop_limit_slippage_bps: int = Field(default=50, ge=1, le=5000)
    api_key: SecretStr | None = None
    api_secret: SecretStr | None = None


#: ``SignalConfig`` keys a strategy's ``params`` may not set: not parameters, or the
#: features' (computed once per bar interval for every strategy: deployment-wide)
NOT_PARAMS = (
    "strategy",
    "strategies",
    "in_process",
    "bar_interval",
    "features",
    "update_interval_ms",
    "rsi_window",
    "macd_fast",
    "macd_slow",
    "macd_signal",
    "bb_window",
    "bb_std",
    "atr_window",
    "volatility_window",
    "vwap_window",
)


class StrategySpec(Section):
    """One strategy of a deployment (an element of ``signal.strategies``).

    ``params`` override ``signal``'s strategy parameters (``rsi_window``,
    ``order_quantity``, ``model_path``, ...) for this strategy only. ``instruments`` are
    symbols of ``market_data.symbols`` (empty: every one). The risk budget
    (``max_position_size``, ``max_daily_loss``, ``max_drawdown_percent``; None: only the
    account's limits) is checked by the risk gate on this strategy's own position and P&L.
    ``shadow``: trades on paper beside the live strategies, never at the venue.
    """

    id: StrategyId
    #: the registry name (``algostream.signals.registry``); default: ``id``
    strategy: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    instruments: tuple[str, ...] = ()
    #: the bars it decides on (default: ``signal.bar_interval``)
    bar_interval: LiveBarInterval | None = None
    max_position_size: Quantity | None = None
    #: realised + unrealised loss since the UTC day began that halts this strategy
    max_daily_loss: Money | None = Field(default=None, gt=0)
    #: equity drawdown from its peak (percent of ``risk.starting_equity``) that halts it
    max_drawdown_percent: Decimal | None = Field(default=None, gt=0, le=100)
    shadow: bool = False
    #: a shadow strategy is always paper: ``False`` here (live orders) is refused
    paper_trading: bool | None = None

    @property
    def registry_name(self) -> str:
        return self.strategy or self.id


class SignalConfig(Section):
    model_path: str = "models/ml_model.skops"
    features: tuple[str, ...] = ("rsi", "macd", "bb", "volume")
    update_interval_ms: int = Field(default=1000, ge=1)
    strategy: str = "rsi_mean_reversion"
    #: several strategies in one deployment (empty: ``strategy`` alone, id = its name)
    strategies: tuple[StrategySpec, ...] = ()
    bar_interval: LiveBarInterval = "1s"
    #: the signals worker runs features -> strategy -> sizing in the feature agent's task
    #: (no Kafka hop between them); each record is on its topic first either way
    in_process: bool = True
    order_quantity: Quantity = Decimal("0.01")
    rsi_window: int = Field(default=6, ge=2)
    rsi_oversold: float = 35.0
    rsi_overbought: float = 65.0
    macd_fast: int = Field(default=12, ge=1)
    macd_slow: int = Field(default=26, ge=2)
    macd_signal: int = Field(default=9, ge=1)
    bb_window: int = Field(default=20, ge=2)
    bb_std: float = Field(default=2.0, gt=0)
    atr_window: int = Field(default=14, ge=1)
    volatility_window: int = Field(default=20, ge=2)
    vwap_window: int = Field(default=20, ge=1)

    def specs(self) -> tuple[StrategySpec, ...]:
        """The deployment's strategies: ``strategies``, or ``strategy`` as the only one."""
        return self.strategies or (StrategySpec(id=self.strategy),)

    def intervals(self) -> tuple[str, ...]:
        """The bar intervals the strategies decide on, in configured order."""
        return tuple(dict.fromkeys(s.bar_interval or self.bar_interval for s in self.specs()))

    def for_strategy(self, spec: StrategySpec) -> SignalConfig:
        """This config with ``spec``'s strategy, bar interval and parameters."""
        update = dict(spec.params)
        update["strategy"] = spec.registry_name
        update["bar_interval"] = spec.bar_interval or self.bar_interval
        update["strategies"] = ()
        return SignalConfig.model_validate(self.model_dump() | update)


class KafkaConfig(Section):
    bootstrap_servers: str = "127.0.0.1:9092"
    app_id: str = "algostream"
    client_id: str = "algostream"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    topic_prefix: str = ""
    replication_factor: int = Field(default=1, ge=1)
    table_store: str = "memory://"
    data_dir: str = ".data"
    web_port: int = Field(default=6066, ge=1, le=65535)
    linger_ms: int = Field(default=0, ge=0)
    #: the ingestor's producer: librdkafka (``confluent-kafka``, ~5x less CPU per record)
    #: or aiokafka (the other processes' client); same guarantees (README: ingest)
    ingest_client: Literal["rdkafka", "aiokafka"] = "rdkafka"
    #: the market worker's batch reader of ``md.book``/``md.trades`` (streams/reader.py):
    #: aiokafka on the event loop, or librdkafka (``confluent-kafka``) fetching in its own
    #: threads; same guarantees (commit after produce, rebalance hand-over)
    reader_client: Literal["rdkafka", "aiokafka"] = "rdkafka"
    acks: Literal["0", "1", "all"] = "all"
    #: the trading worker (colocated and split layouts) writes its outputs, its account
    #: state and the proposals' offsets in one transaction per account (transactional id
    #: ``<app_id>-trading-<account>``): a worker whose session expired is fenced
    #: (streams/fencing.py). False: Faust tables and plain writes, no fencing
    trading_transactions: bool = True
    #: ``min.insync.replicas`` of the table changelog topics the workers create (None:
    #: the brokers' default; a cluster: 2); ``topics apply --min-insync-replicas`` sets it
    #: on the catalog's topics and on existing changelogs
    min_insync_replicas: int | None = Field(default=None, ge=1)


class ObservabilityConfig(Section):
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    metrics_port: int = Field(default=9401, ge=0, le=65535)
    #: Where ``/metrics`` listens. Loopback by default: the metrics show positions and P&L,
    #: so reaching them from another host is a choice (compose sets ``0.0.0.0`` inside its
    #: private network, where Prometheus scrapes them).
    metrics_host: str = "127.0.0.1"


class WorkersConfig(Section):
    """Which stages share a worker process (see ``streams/worker.py``).

    ``colocated``: a ``market`` worker (book, bars, features, strategy, sizing) and a
    ``trading`` worker (risk, execution); market workers scale out by partition.
    ``single``: one ``all`` worker runs every stage, from the tick to the fill, with no
    Kafka hop in between; one process only (the lowest latency on one machine).
    ``split``: ``market`` (book, bars), ``signals`` (features, strategy, sizing) and
    ``trading``, each stage reading its input topic.
    """

    layout: Literal["colocated", "single", "split"] = "colocated"
    #: a stage with input records waiting and no progress for this long is stalled:
    #: /healthz fails, algostream_stage_stalled is 1 (``observability.health``)
    stall_after_s: float = Field(default=30.0, gt=0)
    #: a worker stalled this long exits (code 75) to be restarted; 0: never
    stall_restart_s: float = Field(default=60.0, ge=0)
    #: your own agents: role -> modules with ``stages(app, edge, settings)`` (or
    #: ``register(app, edge, settings)``: plain Faust agents). A new role
    #: is run by ``algostream worker ROLE`` (and by the demo); a layout's role gains them,
    #: e.g. ``{alerts = ["streams.volume_spikes"]}``
    agents: dict[str, list[str]] = Field(default_factory=dict)

    @field_validator("agents")
    @classmethod
    def _agent_names(cls, agents: dict[str, list[str]]) -> dict[str, list[str]]:
        for role, modules in agents.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]*", role):
                raise ValueError(f"workers.agents: role {role!r} is not a lower-case name")
            for name in modules:
                if not re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*", name):
                    raise ValueError(f"workers.agents.{role}: {name!r} is not a module name")
        return agents


class SimConfig(Section):
    """The bundled exchange simulator (``algostream sim``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    seed: int = 42
    rate: float = Field(default=50.0, gt=0, description="market events per second")
    levels: int = Field(default=50, ge=1)
    capture: str | None = None
    capture_http: str | None = None
    speed: float = Field(default=1.0, gt=0)
    #: depth streams batched per interval as Binance does (False: one message per event,
    #: the firehose the throughput benchmark drives)
    batch_depth: bool = True
    #: futures funding times every this many seconds (8 h as on Binance; shorter to see
    #: funding paid in a test or a demo)
    funding_interval_s: int = Field(default=8 * 3600, ge=1, le=24 * 3600)
    #: the simulated trading account's starting balances (free), per asset
    balances: dict[str, Decimal] = Field(
        default_factory=lambda: {
            "USDT": Decimal("100000"),
            "BTC": Decimal("1"),
            "ETH": Decimal("10"),
            "SOL": Decimal("100"),
        }
    )


NotifyKind = Literal["breaker", "state", "integrity", "fill", "daily_pnl"]
NOTIFY_KINDS: tuple[NotifyKind, ...] = ("breaker", "state", "integrity", "fill", "daily_pnl")


class WebhookConfig(Section):
    """One notification target (``notify.webhooks``).

    ``kind: json`` POSTs ``{"kind", "title", "text", "fields", "ts"}`` to ``url``;
    ``kind: telegram`` calls the Bot API's ``sendMessage`` at ``url`` (default
    ``https://api.telegram.org``) for ``chat_id``. The secret (the bot token; for ``json``
    an optional bearer token) is read only from the environment variable named by
    ``secret_env`` and never logged.
    """

    name: str = Field(min_length=1, max_length=64)
    kind: Literal["json", "telegram"] = "json"
    url: str = "https://api.telegram.org"
    secret_env: str | None = None
    chat_id: str | None = None
    events: tuple[NotifyKind, ...] = NOTIFY_KINDS
    #: filled from ``secret_env`` at load; refused in a file
    secret: SecretStr | None = None


class NotifyConfig(Section):
    """Notifications of breaker trips, HALTED/REDUCING, feed integrity events, large fills
    and the daily P&L summary to webhooks (``algostream notify``)."""

    webhooks: tuple[WebhookConfig, ...] = ()
    #: a fill of at least this notional (quantity x price) is notified; None: none are
    fill_notional_above: Money | None = Field(default=None, ge=0)
    #: at most this many messages a minute per webhook (aiolimiter); more wait their turn
    max_per_minute: int = Field(default=20, ge=1)
    retries: int = Field(default=3, ge=0)
    retry_delay_ms: int = Field(default=500, ge=0)
    timeout_ms: int = Field(default=5000, ge=1)
    #: messages waiting per webhook; when full the oldest is dropped (trading never waits)
    queue_size: int = Field(default=1000, ge=1)


class Settings(Section):
    market_data: MarketDataConfig = MarketDataConfig()
    risk: RiskConfig = RiskConfig()
    execution: ExecutionConfig = ExecutionConfig()
    signal: SignalConfig = SignalConfig()
    kafka: KafkaConfig = KafkaConfig()
    observability: ObservabilityConfig = ObservabilityConfig()
    workers: WorkersConfig = WorkersConfig()
    sim: SimConfig = SimConfig()
    notify: NotifyConfig = NotifyConfig()

    def live_specs(self) -> tuple[StrategySpec, ...]:
        """The strategies that trade the account (not shadow)."""
        return tuple(s for s in self.signal.specs() if not s.shadow)

    def shadow_specs(self) -> tuple[StrategySpec, ...]:
        """The shadow strategies (paper, ``shadow.*`` topics)."""
        return tuple(s for s in self.signal.specs() if s.shadow)

    def masked(self) -> dict[str, Any]:
        """The effective config as plain JSON data with every secret shown as ``***``."""
        data: dict[str, Any] = self.model_dump(mode="json")
        for section in data.values():
            for key in SECRET_KEYS:
                if key in section:
                    section[key] = "***" if section[key] else None
        return data


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    """Read ``ALGOSTREAM_<NAME>`` or the owner-only file named by ``ALGOSTREAM_<NAME>_FILE``."""
    var = f"ALGOSTREAM_{name.upper()}"
    if env.get(var):
        return env[var]
    path = env.get(f"{var}_FILE")
    if not path:
        return None
    try:
        mode = Path(path).stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"{var}_FILE={path!r}: file is readable by group or others "
                f"(mode {stat.filemode(mode)}); run chmod 600 on it"
            )
        return Path(path).read_text().strip()
    except OSError as exc:  # missing, a directory, unreadable: never a bare traceback
        raise ConfigError(f"{var}_FILE={path!r}: cannot read it: {exc.strerror}") from None


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        if len(parts) != 2 or not all(parts):
            raise ConfigError(f"{var}: expected ALGOSTREAM__<SECTION>__<KEY>")
        section, key = parts
        if key in SECRET_KEYS:
            raise ConfigError(f"{var}: secrets are read from ALGOSTREAM_{key.upper()}, not here")
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if isinstance(value, float):  # keep decimals exact: let the field parse the text
            value = raw
        data.setdefault(section, {})[key] = value


def check_strategies(settings: Settings) -> None:
    """What ``signal.strategies`` must satisfy across sections; a ``ConfigError`` naming the
    key and the value otherwise (at start, not at the first order)."""
    if not settings.signal.strategies:
        return  # (the registry imports pandas: not for every command that loads settings)
    from algostream.signals.registry import strategy_names  # (imports this module)

    seen: dict[str, int] = {}
    symbols = {s.upper() for s in settings.market_data.symbols}
    for n, spec in enumerate(settings.signal.strategies):
        key = f"signal.strategies.{n}"
        if spec.id in seen:
            raise ConfigError(
                f"config key '{key}.id' = {spec.id!r}: the same id as "
                f"signal.strategies.{seen[spec.id]}; strategy ids must be unique"
            )
        seen[spec.id] = n
        if spec.registry_name not in strategy_names():
            raise ConfigError(
                f"config key '{key}.strategy' = {spec.registry_name!r}: unknown strategy; "
                f"known: {sorted(strategy_names())}"
            )
        for inst in spec.instruments:
            if inst.upper().partition(":")[2 if ":" in inst else 0] not in symbols:
                raise ConfigError(
                    f"config key '{key}.instruments' = {inst!r}: not ingested "
                    f"(market_data.symbols = {list(settings.market_data.symbols)})"
                )
        interval = spec.bar_interval or settings.signal.bar_interval
        if interval not in settings.market_data.bar_intervals:
            raise ConfigError(
                f"config key '{key}.bar_interval' = {interval!r}: no such bars "
                f"(market_data.bar_intervals = {list(settings.market_data.bar_intervals)})"
            )
        if spec.shadow and spec.paper_trading is False:
            raise ConfigError(
                f"config key '{key}.paper_trading' = False: a shadow strategy "
                f"({spec.id!r}) never sends live orders; remove the key or set shadow: false"
            )
        for param in spec.params:
            if param in NOT_PARAMS or param not in SignalConfig.model_fields:
                raise ConfigError(
                    f"config key '{key}.params.{param}' = {spec.params[param]!r}: not a "
                    f"per-strategy parameter (feature windows are set once, in signal)"
                )
        try:
            settings.signal.for_strategy(spec)
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            raise ConfigError(
                f"config key '{key}.params.{loc}' = {err.get('input')!r}: {err['msg']}"
            ) from None


def _webhook_secrets(data: dict[str, Any], env: Mapping[str, str], source: Path) -> list[str]:
    """Put each webhook's secret (from its ``secret_env``) in; refuse one in the file."""
    notify = data.get("notify")
    hooks = notify.get("webhooks") if isinstance(notify, dict) else None
    loaded: list[str] = []
    for n, hook in enumerate(hooks if isinstance(hooks, list) else ()):
        if not isinstance(hook, dict):
            continue
        key = f"notify.webhooks.{n}"
        if hook.get("secret"):
            raise ConfigError(
                f"{source}: key '{key}.secret' holds a secret; name an environment "
                f"variable in '{key}.secret_env' instead"
            )
        var = hook.get("secret_env")
        if hook.get("kind") == "telegram" and (not var or not hook.get("chat_id")):
            raise ConfigError(
                f"config key '{key}' = {hook.get('name')!r}: a telegram webhook needs "
                "'secret_env' (the bot token's variable) and 'chat_id'"
            )
        if var:
            value = env.get(str(var))
            if not value:
                raise ConfigError(
                    f"config key '{key}.secret_env' = {var!r}: the environment variable "
                    "is not set (or empty)"
                )
            hook["secret"] = value
            loaded.append(value)
    return loaded


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load ``system.json`` (default: ``$ALGOSTREAM_CONFIG`` or the repo's), apply env."""
    env = os.environ if env is None else env
    data: dict[str, Any] = {}
    cfg_path = Path(path or env.get("ALGOSTREAM_CONFIG") or DEFAULT_CONFIG_PATH)
    if path is not None or cfg_path.exists():
        try:
            data = json.loads(cfg_path.read_text(), parse_float=str)
        except FileNotFoundError:
            raise ConfigError(f"config file {str(cfg_path)!r} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"config file {str(cfg_path)!r} is not valid JSON: {exc}") from None
    for section in data.values():
        if isinstance(section, dict):
            for key in SECRET_KEYS:
                if section.get(key):
                    raise ConfigError(
                        f"{cfg_path}: key '{key}' holds a secret; secrets come only from "
                        f"the environment (ALGOSTREAM_{key.upper()})"
                    )
    _apply_env(data, env)
    execution = data.setdefault("execution", {})
    loaded: list[str] = []  # secret values: never echoed back in an error message
    for name in SECRET_NAMES:
        secret = _read_secret(env, name)
        if secret:
            execution[name] = secret
            loaded.append(secret)
    control_key = _read_secret(env, "control_key")
    if control_key:
        data.setdefault("risk", {})["control_key"] = control_key
        loaded.append(control_key)
    password = _read_secret(env, "sasl_password")
    if password:
        data.setdefault("kafka", {})["sasl_password"] = password
        loaded.append(password)
    loaded += _webhook_secrets(data, env, cfg_path)
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"])
        value = err.get("input")
        shown = repr(value)
        if any(s in key for s in SECRET_KEYS) or any(x in shown for x in loaded):
            shown = "***"  # a secret key, or a secret pasted into another key
        raise ConfigError(f"config key '{key}' = {shown}: {err['msg']}") from None
    check_strategies(settings)
    return settings
