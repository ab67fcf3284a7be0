"""Notifications to webhooks: breaker trips, HALTED/REDUCING, feed integrity events, large
fills and the daily P&L summary (``notify`` section; ``algostream notify``).

Two parts. :class:`NoticeMaker` is pure: a record from ``risk.events``, ``book.integrity``,
``orders.events`` or ``pnl`` becomes zero or more :class:`Notice`; the daily summary is
made when the first ``pnl`` record of a new UTC day arrives (each account's and each
strategy's equity at the start and the end of the day before). :class:`WebhookSender`
delivers them to one webhook through httpx, with retries (``notify.retries``, growing
delays) and a rate limit (``notify.max_per_minute``, aiolimiter). :meth:`offer
<WebhookSender.offer>` never waits: it puts the notice on a bounded queue (the oldest is
dropped when full), so a slow or failing webhook never holds up whoever offers. The
notifier runs in its own process and consumer group, reading the topics; trading does not
depend on it at all.

Secrets (a Telegram bot token, a bearer token) come only from the environment (the
variable named by ``secret_env``); errors are logged by type and HTTP status, never with
the URL (a Telegram URL holds the token).

>>> from algostream.model.enums import IntegrityKind
>>> from algostream.model.records import BookIntegrity
>>> maker = NoticeMaker(fill_notional_above=None)
>>> ev = BookIntegrity(instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1, record_id="i",
...                    lineage_id="x", kind=IntegrityKind.GAP, detail="seq 5 -> 9")
>>> [(n.kind, n.title) for n in maker.on_record(ev)]
[('integrity', 'Feed GAP: BINANCE:BTCUSDT')]
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import structlog
from aiolimiter import AsyncLimiter

from algostream.config import NotifyConfig, NotifyKind, Settings, WebhookConfig
from algostream.model.enums import RiskEventKind, TradingState
from algostream.model.records import BookIntegrity, OrderEvent, PnL, Record, RiskEvent

log = structlog.get_logger("algostream.notify")

#: the topics the notifier reads
NOTIFY_TOPICS = ("risk.events", "book.integrity", "orders.events", "pnl")
DAY_NS = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class Notice:
    """One message: its kind (``notify.webhooks[].events``), a title, text and fields."""

    kind: NotifyKind
    title: str
    text: str
    ts_ns: int
    fields: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        ts = datetime.fromtimestamp(self.ts_ns / 1e9, UTC).isoformat()
        return {
            "kind": self.kind,
            "title": self.title,
            "text": self.text,
            "fields": self.fields,
            "ts": ts,
        }

    def as_telegram(self, chat_id: str) -> dict[str, Any]:
        lines = [self.title, self.text, *(f"{k}: {v}" for k, v in self.fields.items())]
        return {
            "chat_id": chat_id,
            "text": "\n".join(line for line in lines if line)[:4096],
            "disable_web_page_preview": True,
        }


class NoticeMaker:
    """Records in, notices out (pure; see the module docstring)."""

    def __init__(self, fill_notional_above: Decimal | None) -> None:
        self.fill_notional_above = fill_notional_above
        #: (account, strategy or "") -> (day, equity at its start, newest equity)
        self._days: dict[tuple[str, str], tuple[int, Decimal, Decimal]] = {}

    def on_record(self, record: Record) -> list[Notice]:
        if isinstance(record, RiskEvent):
            return self._risk(record)
        if isinstance(record, BookIntegrity):
            return [
                Notice(
                    "integrity",
                    f"Feed {record.kind.value}: {record.instrument}",
                    record.detail,
                    record.ts_event,
                )
            ]
        if isinstance(record, OrderEvent):
            return self._fill(record)
        if isinstance(record, PnL):
            return self._pnl(record)
        return []

    def _risk(self, ev: RiskEvent) -> list[Notice]:
        fields = {"actor": ev.actor, "state": ev.state.value, **ev.detail}
        if ev.kind is RiskEventKind.BREAKER_TRIPPED:
            scope = ev.detail.get("strategy") or ev.detail.get("account") or ev.instrument
            return [Notice("breaker", f"Breaker tripped: {scope}", ev.reason, ev.ts_event, fields)]
        if ev.state in (TradingState.HALTED, TradingState.REDUCING) and ev.kind in (
            RiskEventKind.STATE_CHANGED,
            RiskEventKind.CONTROL,
        ):
            scope = ev.detail.get("strategy") or ev.instrument
            title = f"{ev.state.value}: {scope}"
            return [Notice("state", title, ev.reason, ev.ts_event, fields)]
        return []

    def _fill(self, ev: OrderEvent) -> list[Notice]:
        limit = self.fill_notional_above
        if limit is None or ev.fill_qty <= 0 or ev.fill_price is None:
            return []
        notional = ev.fill_qty * ev.fill_price
        if notional < limit:
            return []
        fields = {
            "account": ev.account,
            "strategy": ev.strategy or "",
            "side": ev.side.value,
            "quantity": str(ev.fill_qty),
            "price": str(ev.fill_price),
            "notional": str(notional),
        }
        title = f"Fill {ev.side.value} {ev.fill_qty} {ev.instrument} @ {ev.fill_price}"
        return [Notice("fill", title, f"notional {notional} >= {limit}", ev.ts_event, fields)]

    def _pnl(self, rec: PnL) -> list[Notice]:
        day = rec.ts_event // DAY_NS
        key = (rec.account, rec.strategy or "")
        held = self._days.get(key)
        out: list[Notice] = []
        if held is not None and day > held[0]:
            out = self._summary(held[0], rec.ts_event)
        if held is None or day > held[0]:
            self._days[key] = (day, rec.equity, rec.equity)
        elif day == held[0]:
            self._days[key] = (day, held[1], rec.equity)
        return out

    def _summary(self, day: int, ts: int) -> list[Notice]:
        """The summary of ``day`` (every account and strategy seen on it), once."""
        rows = {k: v for k, v in self._days.items() if v[0] == day}
        if not rows:
            return []
        fields: dict[str, str] = {}
        for (account, strategy), (_, start, end) in sorted(rows.items()):
            name = f"{account}/{strategy}" if strategy else account
            fields[name] = f"{end} ({end - start:+})"
        for key, (_, _, end) in rows.items():  # the next day starts where this one ended
            self._days[key] = (day + 1, end, end)
        date = datetime.fromtimestamp(day * 86_400, UTC).date().isoformat()
        return [Notice("daily_pnl", f"Daily P&L {date}", "equity (change)", ts, fields)]


class WebhookSender:
    """Deliver notices to one webhook: bounded queue, retries, rate limit."""

    def __init__(
        self,
        hook: WebhookConfig,
        config: NotifyConfig,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.hook = hook
        self.config = config
        self.client = client or httpx.AsyncClient(timeout=config.timeout_ms / 1000)
        self.limiter = AsyncLimiter(config.max_per_minute, 60)
        self.queue: deque[Notice] = deque(maxlen=config.queue_size)
        self._ready = asyncio.Event()
        self.sent = 0
        self.failed = 0
        self.dropped = 0

    def offer(self, notice: Notice) -> None:
        """Queue ``notice`` if this webhook wants its kind; never waits."""
        if notice.kind not in self.hook.events:
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1  # the oldest goes: a stuck webhook must not grow memory
        self.queue.append(notice)
        self._ready.set()

    def _request(self, notice: Notice) -> tuple[str, dict[str, Any], dict[str, str]]:
        secret = None if self.hook.secret is None else self.hook.secret.get_secret_value()
        if self.hook.kind == "telegram":
            url = f"{self.hook.url.rstrip('/')}/bot{secret}/sendMessage"
            return url, notice.as_telegram(self.hook.chat_id or ""), {}
        headers = {} if secret is None else {"Authorization": f"Bearer {secret}"}
        return self.hook.url, notice.as_json(), headers

    async def send(self, notice: Notice) -> bool:
        """POST one notice: up to ``1 + retries`` attempts; True when delivered (2xx)."""
        url, body, headers = self._request(notice)
        delay = self.config.retry_delay_ms / 1000
        for attempt in range(self.config.retries + 1):
            final = attempt >= self.config.retries
            async with self.limiter:
                try:
                    response = await self.client.post(url, json=body, headers=headers)
                    if response.is_success:
                        self.sent += 1
                        return True
                    problem = f"HTTP {response.status_code}"
                    code = response.status_code
                    final = final or (400 <= code < 500 and code != 429)  # won't get better
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__  # (not str(exc): it may hold the URL)
            log.warning(
                "webhook delivery failed",
                webhook=self.hook.name,
                kind=notice.kind,
                attempt=attempt + 1,
                problem=problem,
            )
            if final:
                break
            await asyncio.sleep(delay * (2**attempt))
        self.failed += 1
        return False

    async def run(self) -> None:
        """Send queued notices in order, forever (cancel to stop)."""
        while True:
            while not self.queue:
                self._ready.clear()
                await self._ready.wait()
            await self.send(self.queue.popleft())

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until the queue is empty."""
        deadline = time.monotonic() + timeout_s
        while self.queue and time.monotonic() < deadline:
            await asyncio.sleep(0.05)


class Notifier:
    """A :class:`NoticeMaker` and a :class:`WebhookSender` per configured webhook."""

    def __init__(self, config: NotifyConfig, client: httpx.AsyncClient | None = None) -> None:
        self.maker = NoticeMaker(config.fill_notional_above)
        self.senders = [WebhookSender(h, config, client) for h in config.webhooks]
        self._tasks: list[asyncio.Task[None]] = []

    def on_record(self, record: Record) -> list[Notice]:
        notices = self.maker.on_record(record)
        for notice in notices:
            for sender in self.senders:
                sender.offer(notice)
        return notices

    def start(self) -> None:
        self._tasks = [asyncio.create_task(s.run()) for s in self.senders]

    async def stop(self, drain_s: float = 5.0) -> None:
        for sender in self.senders:
            await sender.drain(drain_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run_notifier(
    settings: Settings,
    stop: asyncio.Event | None = None,
    *,
    offset_reset: str = "latest",
    client: httpx.AsyncClient | None = None,
) -> Notifier:
    """Read the notified topics (consumer group ``<app_id>-notify``; a new group starts at
    their ends) and send what they call for, until ``stop`` is set."""
    from algostream.kafka.catalog import load_catalog
    from algostream.kafka.clients import make_consumer
    from algostream.model.records import RECORD_TYPES

    catalog = load_catalog()
    prefix = settings.kafka.topic_prefix
    types = {prefix + t: RECORD_TYPES[catalog[t].record] for t in NOTIFY_TOPICS}
    notifier = Notifier(settings.notify, client)
    consumer = make_consumer(
        settings.kafka,
        *types,
        group_id=f"{settings.kafka.app_id}-notify",
        auto_offset_reset=offset_reset,
    )
    await consumer.start()
    notifier.start()
    stop = stop or asyncio.Event()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            for tp, messages in batches.items():
                kind = types[tp.topic]
                for msg in messages:
                    try:
                        record = kind.decode(msg.value)
                    except Exception as exc:  # a bad record is not a reason to stop
                        log.warning("undecodable record", topic=tp.topic, error=type(exc).__name__)
                        continue
                    notifier.on_record(record)
            if batches:  # queued (delivery is the senders' job: a crash loses the queue)
                await consumer.commit()
    finally:
        await consumer.stop()
        await notifier.stop()
    return notifier
