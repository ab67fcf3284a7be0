"""Risk agent: the pre-trade gate between ``orders.proposed`` and ``orders.approved``.

A thin shell over :class:`~algostream.risk.RiskProcessor` (one per worker: an account is
one serial risk domain, see topics.toml). Inputs: proposals, order events (fills -> ledger),
book tops (marks, stops), book integrity, operator control. State lives in three tables
(changelogged, so a restarted worker continues exactly):

- ``risk-state``: the processor's small state (ledgers, pending orders, stops, breaker);
- ``risk-decisions``: client order id -> decision, so a redelivered proposal gets the
  same decision back instead of a second approval;
- ``risk-fills``: order-event ids already applied, so a redelivered fill is not counted twice;
- ``risk-control-nonces``: nonce -> offset of each accepted control command: a copy of
  one (another offset) is a replay and refused, the record itself redelivered is not.

Control commands take effect only when signed with the operator key
(:mod:`algostream.risk.control_auth`); a refused one goes to ``dlq`` with the reason and
gets a ``CONTROL_REFUSED`` audit record on ``risk.events``.

With fencing (``kafka.trading_transactions``, :mod:`streams.fencing`) the four tables are
the account state's (:mod:`streams.account_state`), written in the account's transaction
with the decisions they go with, and every stage handles a record only while this worker
owns the account with that state loaded (:func:`streams.fencing.may_handle`).

The small state also carries the newest decisions and applied ids itself
(``recent_decided``, ``recent_applied``): a ``kill -9`` between two table writes can land the
state without the other key, and the state must still know what it has counted. It can
also land a decision's key without the state (its reservation): decisions are numbered and
the state counts them, so one numbered past the state's count takes its effect again when
the processor is rebuilt from the tables.

Tables use the key partitioner (one partition), so agents on 3-partition market topics
can persist too.

Proposals are read by a latency-first reader of the worker's own
(:mod:`streams.reader`), not a Faust agent: the hop from the sizing stage does not wait
for Faust's consumer thread and its hand-over to the agent. ``orders.proposed`` is held
in Faust, so Faust's assignment still picks the one trading worker that decides; the
reader commits after the decisions and their table writes are flushed. Book tops come
from the worker's tap (every partition); the gate reads no proposal until the tap has
read the tops that were on the broker when it was assigned, and a proposal whose
instrument's top is older than itself by more than ``market_data.stale_after_ms`` waits
(a bounded while) for the tap to read on: a worker started on a backlog would otherwise
reject it all for want of a book, or check prices against old mids.

Where the worker makes the proposals and book tops too (the ``single`` layout) the gate
takes them in-process (:mod:`streams.stage`: no Kafka hop between a signal and its
approval); what it decided that way is skipped when read back from ``orders.proposed``.
Approvals, positions and P&L are published to this worker's other stages (the paper
broker, a strategy's context) once the decision is saved.
"""

from __future__ import annotations

import time
from typing import Any

import faust
import structlog
from aiokafka import TopicPartition

from algostream.config import Settings
from algostream.model.enums import TradingState
from algostream.model.records import (
    BookIntegrity,
    BookTop,
    ControlCommand,
    OrderEvent,
    OrderRejected,
    OrderRequest,
    PnL,
    Position,
    Record,
    RiskEvent,
)
from algostream.observability import metrics
from algostream.observability.strategies import observe_strategy
from algostream.risk import RiskProcessor
from algostream.risk.breaker import ALL_INSTRUMENTS
from algostream.risk.control_auth import ControlVerifier, refusal_event
from algostream.risk.errors import ControlAuthError
from algostream.risk.processor import output_topic
from streams import fencing, futures
from streams.edge import Edge
from streams.reader import decoded, reader_of, readers
from streams.stage import Input, Read, Stage
from streams.state import Recent

#: what the gate hands to this worker's other stages too (the paper broker, a strategy's
#: context); a proposal of a stop goes back through its topic
PUBLISHED = ("orders.approved", "positions", "pnl")

#: a proposal whose instrument's top is older (market time) than itself by more than the
#: feed's staleness limit (``market_data.stale_after_ms``) waits for the tap to read on:
#: the tap may be behind the worker that made the proposal (a backlog). The gate waits
#: that long at most, while the tap keeps reading, before it decides with what it has
#: (NO_MARKET_DATA, or a band check against the older mid)
MARK_WAIT_S = 5.0
#: the tap has nothing more to read if it handles no batch this long (its fetches wait
#: ``TAP_FETCH_WAIT_MS``): a proposal for a quiet instrument waits that long
TAP_IDLE_S = 0.05

#: its stages decide for the account: the worker fences them (:mod:`streams.fencing`)
ACCOUNT_STAGES = True

log = structlog.get_logger("algostream.risk")

STATE_LEVEL = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}


class RiskShell:
    """Owns the processor and its persistence in tables."""

    def __init__(self, app: faust.App, edge: Edge, settings: Settings) -> None:
        self.settings = settings
        #: ``signal.strategies``: fills are attributed to them; shadow ones are refused
        self._strategies = settings.signal.strategies
        self.state = fencing.trading_table(app, edge, "risk-state")
        self.decisions = fencing.trading_table(app, edge, "risk-decisions")
        self.fills = fencing.trading_table(app, edge, "risk-fills")
        #: nonce of an accepted control command -> its offset on ``control``
        self.nonces = fencing.trading_table(app, edge, "risk-control-nonces")
        self._proc: RiskProcessor | None = None

    @property
    def proc(self) -> RiskProcessor:
        if self._proc is None:  # first use after table recovery: continue where we were
            small = self.state.get("state")
            if small is None:
                self._proc = RiskProcessor(self.settings.risk, strategies=self._strategies)
            else:
                full = dict(small)
                full["decided"] = [[coid, *v] for coid, v in self.decisions.items()]
                full["applied"] = list(self.fills.keys())
                self._proc = RiskProcessor.from_state(
                    self.settings.risk, None, full, strategies=self._strategies
                )
        return self._proc

    async def forget(self) -> None:
        """A rebalance begins: drop the processor; whoever owns the account next builds it
        again from the tables (recovered for it) at first use. A standby that kept the one
        it made before it owned anything would decide with an empty ledger."""
        self._proc = None

    def persist(self, *, decided: str | None = None, applied: str | None = None) -> None:
        self.state["state"] = self.proc.to_state(memories=False)
        if decided is not None:
            self.decisions[decided] = self.proc.decision_state(decided)
        if applied is not None:
            self.fills[applied] = True


def observe(record: Record, *, from_proposal: bool) -> None:
    """Keep the risk gauges and counters in step with what the agent publishes."""
    if observe_strategy(record):
        return  # one strategy's own record (signal.strategies)
    if isinstance(record, OrderRejected):
        metrics.ORDERS_REJECTED.labels(reason=record.reason).inc()
    elif isinstance(record, OrderRequest) and from_proposal:
        metrics.ORDERS_APPROVED.inc()
    elif isinstance(record, Position):
        metrics.POSITION_QUANTITY.labels(account=record.account, instrument=record.instrument).set(
            float(record.quantity)
        )
    elif isinstance(record, PnL):
        metrics.UNREALIZED_PNL.labels(account=record.account).set(float(record.unrealized_pnl))
        metrics.REALIZED_PNL.labels(account=record.account).set(float(record.realized_pnl))
        metrics.EQUITY.labels(account=record.account).set(float(record.equity))
        metrics.EXPOSURE_NOTIONAL.labels(account=record.account).set(float(record.exposure))
    elif isinstance(record, RiskEvent):
        account = record.detail.get("account", "")
        metrics.TRADING_STATE.labels(account=account, instrument=record.instrument).set(
            STATE_LEVEL[record.state]
        )


def stages(app: faust.App, edge: Edge, settings: Settings) -> list[Stage]:
    txn: fencing.AccountTransaction | None = edge.txn
    shell = RiskShell(app, edge, settings)
    metrics.LOSS_THRESHOLD.labels(account=settings.risk.account).set(
        float(settings.risk.max_loss_threshold)
    )
    metrics.TRADING_STATE.labels(account=settings.risk.account, instrument="ALL:*").set(0)

    async def emit(
        records: list[Record], *, from_proposal: bool = False, publish: bool = True
    ) -> None:
        for record in records:
            topic = output_topic(record, from_proposal=from_proposal)
            await edge.send(topic, record)
            if publish and topic in PUBLISHED:  # stops' proposals: back through the topic
                await edge.deliver(topic, record)
            if isinstance(record, Position):
                futures.observe_position(record, settings.risk.leverage)
            observe(record, from_proposal=from_proposal)

    async def decide(order: OrderRequest) -> None:
        start = time.perf_counter()
        out = shell.proc.on_proposal(order, time.time_ns())
        metrics.RISK_CHECK_SECONDS.labels(instrument=order.instrument).observe(
            time.perf_counter() - start
        )
        await emit(out, from_proposal=True, publish=False)
        shell.persist(decided=order.client_order_id)
        for record in out:  # to this worker's stages once the decision is saved
            if (topic := output_topic(record, from_proposal=True)) in PUBLISHED:
                await edge.deliver(topic, record)

    async def on_top(top: BookTop) -> None:
        # a standby keeps no state (RiskShell.forget)
        if not edge.owns("orders.proposed") or not await fencing.may_handle(edge):
            return
        out = shell.proc.on_book_top(top, time.time_ns())
        if out:
            await emit(out)
            shell.persist()

    decided_here = Recent()  # proposals decided in-process, skipped when read from the topic
    mark_lag_ns = settings.market_data.stale_after_ms * 1_000_000

    async def await_marks(order: OrderRequest) -> None:
        """Let the tap bring the order's instrument's top up to the order's time first:
        a proposal made on a backlog can be read before the tops it was made from. In
        step with the market (the tap's top is at most its fetch wait behind) it does not
        wait at all; for a quiet instrument, one of the tap's batches at most. (No tap: the
        tops are this worker's own, taken in-process.)"""
        taps = readers(edge).get("taps")
        deadline = time.monotonic() + MARK_WAIT_S
        while (left := deadline - time.monotonic()) > 0:
            top = shell.proc.top(order.instrument)
            if top is not None and top.ts_event >= order.ts_event - mark_lag_ns:
                return
            if taps is None or not await taps.advance(min(left, TAP_IDLE_S)):
                return  # nothing more came: decide with what there is
            if not taps.behind():
                return  # the tap has read all it knew of: the instrument is quiet

    async def on_proposal(order: OrderRequest) -> None:
        """A proposal read by the gate's reader (it owns the topic's partition)."""
        if txn is not None and txn.fenced:
            return  # another worker owns the account: its gate decides these
        if order.record_id not in decided_here:
            decided_here.add(order.record_id)
            await await_marks(order)
            await decide(order)

    async def proposed_here(order: OrderRequest) -> None:
        """A proposal of this worker's sizing stage, in-process."""
        if edge.owns("orders.proposed"):  # else the owner decides it from the topic
            await on_proposal(order)

    async def proposals(batch: dict[TopicPartition, list[Any]]) -> None:
        async for _, _, order in decoded(edge, batch, "orders.proposed", OrderRequest, "risk"):
            await on_proposal(order)

    # a reader of its own, latency first, in the worker's loop: the proposals' hop does not
    # wait for Faust's consumer thread and its hand-over to the agent; Faust still decides
    # which trading worker owns the account (orders.proposed is held, streams.reader)
    gate = reader_of(app, edge, settings, "proposals", "orders.proposed")
    gate.read("orders.proposed", proposals)

    def wired() -> None:
        taps = readers(edge).get("taps")
        if taps is not None:  # no decision before the marks are up to the tops on the broker
            gate.after(taps)

    if txn is not None:  # decisions and the proposals' offsets in one transaction
        gate.committer = txn.commit
        gate.commit_every_batch = True
        gate.before_take_over.append(txn.ensure_started)
        txn.on_fenced.append(shell.forget)

    async def on_fill(ev: OrderEvent) -> None:
        if await fencing.may_handle(edge):  # else the owner applies it
            await emit(shell.proc.on_order_event(ev, time.time_ns()))
            shell.persist(applied=ev.record_id)

    async def on_integrity(ev: BookIntegrity) -> None:
        if await fencing.may_handle(edge):
            await emit(shell.proc.on_integrity(ev, time.time_ns()))
            shell.persist()

    verifier = control_verifier(settings)

    async def refuse(
        event: faust.EventT[bytes], cmd: ControlCommand, exc: ControlAuthError
    ) -> None:
        """Not for this gate: to ``dlq`` with the reason, and an audit record naming it."""
        msg = event.message
        account = settings.risk.account
        proc = shell.proc
        state = (
            proc.breaker.account_state(account)
            if cmd.instrument == ALL_INSTRUMENTS
            else proc.breaker.state(account, cmd.instrument)
        )
        source = f"{edge.catalog_name(msg.topic)}/{msg.partition}/{msg.offset}"
        log.warning("control command refused", refused=exc.kind, source=source, error=str(exc))
        metrics.CONTROL_REFUSED.labels(reason=exc.kind).inc()
        await edge.dead_letter(event, exc, "risk")
        audit = refusal_event(
            cmd, exc, account=account, state=state, source=source, now_ns=time.time_ns()
        )
        await emit([audit])

    @app.agent(edge.topic("control"), name="risk-control")
    async def control(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            cmd = await edge.decode_or_dlq(event, ControlCommand, "risk")
            if cmd is None or not await fencing.may_handle(edge):
                continue
            offset = event.message.offset
            first = None if cmd.nonce is None else shell.nonces.get(cmd.nonce)
            try:
                verifier.check(cmd, time.time_ns(), offset=offset, first_offset=first)
            except ControlAuthError as exc:
                await refuse(event, cmd, exc)
                continue
            shell.nonces[cmd.nonce] = offset  # before the state: a redelivery is known
            await emit(shell.proc.on_control(cmd, time.time_ns()))
            shell.persist()

    return [
        Stage(
            "risk",
            inputs={
                "orders.proposed": Input(OrderRequest, proposed_here),
                "book.top": Input(BookTop, on_top, read=Read.TAP),
                # applied at least once, from the broker: never taken in-process
                "orders.events": Input(OrderEvent, on_fill, local=False),
                "book.integrity": Input(BookIntegrity, on_integrity, local=False),
                **futures.risk_inputs(edge, settings, shell, emit),
            },
            outputs=PUBLISHED,
            reads=("orders.proposed", "control"),
            on_revoke=shell.forget,
            wired=wired,
        )
    ]


def control_verifier(settings: Settings) -> ControlVerifier:
    """The gate's verifier of control commands; without an operator key it refuses every
    command, and says so loudly at start."""
    secret = settings.risk.control_key
    if secret is None:
        log.error(
            "no operator key: every control command will be refused; set "
            "ALGOSTREAM_CONTROL_KEY or ALGOSTREAM_CONTROL_KEY_FILE (the CLI signs with it)"
        )
    key = None if secret is None else secret.get_secret_value().encode()
    return ControlVerifier(key, settings.risk.control_window_ms * 1_000_000)
