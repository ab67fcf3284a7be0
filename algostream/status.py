"""``algostream status``: each strategy's state, positions and P&L, and the consumer lag of
every worker group, read from the topics and the broker (no worker is asked).

The strategies' part is :func:`strategy_status` (pure): the newest ``positions``/``pnl``
record per key and the newest ``risk.events`` record of each strategy's halt or resume,
from the tails of those topics. A deployment of one ``signal.strategy`` has no records of
its own: the account's stand for it. The lag part lists every consumer group whose name
starts with ``kafka.app_id`` (the workers' Faust groups ``<app_id>-<role>``, their readers,
the notifier and the shadow worker) with, per topic, the sum over partitions of the end
offset minus the committed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from algostream.config import Settings
from algostream.model.enums import TradingState
from algostream.model.records import PnL, Position, Record, RiskEvent

#: records read from the end of each partition of the account topics
TAIL = 5000


@dataclass
class StrategyStatus:
    """One strategy (or the account, ``strategy`` ``*``) as the topics have it."""

    strategy: str
    shadow: bool = False
    state: TradingState = TradingState.ACTIVE
    reason: str = ""
    positions: dict[str, Decimal] = field(default_factory=dict)
    equity: Decimal | None = None
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    drawdown: Decimal | None = None


@dataclass(frozen=True)
class GroupLag:
    group: str
    topic: str
    lag: int
    partitions: int


def strategy_status(settings: Settings, records: list[Record]) -> list[StrategyStatus]:
    """The account (first) and every configured strategy, from ``records`` in time order
    (``positions``, ``pnl``, ``risk.events`` and their ``shadow.*`` twins)."""
    account = settings.risk.account
    attributed = bool(settings.signal.strategies)
    out = {"*": StrategyStatus("*")}
    for spec in settings.signal.specs():
        out[spec.id] = StrategyStatus(spec.id, shadow=spec.shadow)

    def owner(strategy: str | None) -> StrategyStatus | None:
        if strategy is None:
            return out["*"]
        return out.get(strategy)

    for rec in records:
        if isinstance(rec, Position) and rec.account == account:
            target = owner(rec.strategy)
            if target is not None:
                target.positions[rec.instrument] = rec.quantity
        elif isinstance(rec, PnL) and rec.account == account:
            target = owner(rec.strategy)
            if target is not None:
                target.equity, target.drawdown = rec.equity, rec.drawdown
                target.realized_pnl, target.unrealized_pnl = rec.realized_pnl, rec.unrealized_pnl
        elif isinstance(rec, RiskEvent):
            if rec.detail.get("layer") == "strategy":
                target = out.get(rec.detail.get("strategy", ""))
            elif rec.instrument == "ALL:*" and rec.detail.get("account") in (None, account):
                target = out["*"]
            else:
                continue
            if target is not None:
                target.state, target.reason = rec.state, rec.reason
    if not attributed:  # one strategy: the account's records are its own
        (spec,) = settings.signal.specs()
        mine = out[spec.id]
        whole = out["*"]
        mine.positions, mine.equity, mine.drawdown = whole.positions, whole.equity, whole.drawdown
        mine.realized_pnl, mine.unrealized_pnl = whole.realized_pnl, whole.unrealized_pnl
        if mine.state is TradingState.ACTIVE:
            mine.state, mine.reason = whole.state, whole.reason
    for status in out.values():
        status.positions = {i: q for i, q in status.positions.items() if q}
    return list(out.values())


async def consumer_lags(settings: Settings) -> list[GroupLag]:
    """The lag of every consumer group of this deployment, per topic."""
    from aiokafka import TopicPartition

    from algostream.kafka.clients import make_admin, make_consumer

    admin = make_admin(settings.kafka)
    consumer = make_consumer(settings.kafka)
    await admin.start()
    await consumer.start()
    try:
        groups = sorted(
            g[0] if isinstance(g, tuple) else g.group_id for g in await admin.list_consumer_groups()
        )
        out: list[GroupLag] = []
        for group in groups:
            if not group.startswith(settings.kafka.app_id):
                continue
            committed = await admin.list_consumer_group_offsets(group)
            tps = [tp for tp, meta in committed.items() if meta is not None and meta.offset >= 0]
            if not tps:
                continue
            ends = await consumer.end_offsets(tps)
            per_topic: dict[str, list[int]] = {}
            for tp in tps:
                assert isinstance(tp, TopicPartition)
                lag = max(ends[tp] - committed[tp].offset, 0)
                per_topic.setdefault(tp.topic, []).append(lag)
            for topic, lags in sorted(per_topic.items()):
                out.append(GroupLag(group, topic, sum(lags), len(lags)))
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def collect(settings: Settings) -> tuple[list[StrategyStatus], list[GroupLag]]:
    """Strategies from the topics' tails and the lag of every group."""
    from algostream.backtest.run import decode_topic_record
    from algostream.backtest.source import read_range

    topics = ["positions", "pnl", "risk.events"]
    if settings.shadow_specs():
        topics += ["shadow.positions", "shadow.pnl"]
    tail = await read_range(settings.kafka, topics, last=TAIL)
    records = [decode_topic_record(r) for r in tail]
    return strategy_status(settings, records), await consumer_lags(settings)
