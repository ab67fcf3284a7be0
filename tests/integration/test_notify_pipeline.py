"""Notifications from the topics (real broker) to a local webhook server."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from algostream.config import NotifyConfig, WebhookConfig
from algostream.model.enums import RiskEventKind, TradingState
from algostream.notify import run_notifier
from tests.kafka_kit import produce
from tests.notify_kit import webhook_server
from tests.unit.notify.test_notify import fill, risk_event


async def test_notifier_reads_the_topics_and_posts_to_the_webhook(provisioned) -> None:  # type: ignore[no-untyped-def]
    async with webhook_server() as (url, got):
        notify = NotifyConfig(
            webhooks=(WebhookConfig(name="ops", url=f"{url}/ops"),),
            fill_notional_above=Decimal("1000"),
        )
        s = provisioned.model_copy(update={"notify": notify})
        await produce(s, "risk.events", [
            risk_event(RiskEventKind.BREAKER_TRIPPED, TradingState.HALTED),
        ])  # fmt: skip
        await produce(s, "orders.events", [fill("0.001", "50000"), fill("1", "50000")])
        stop = asyncio.Event()
        task = asyncio.create_task(run_notifier(s, stop, offset_reset="earliest"))
        try:
            bodies = await got.wait_for("/ops", 2, timeout_s=60)
        finally:
            stop.set()
            await task
        assert sorted(b["kind"] for b in bodies) == ["breaker", "fill"]
        (big,) = [b for b in bodies if b["kind"] == "fill"]
        assert big["fields"]["quantity"] == "1" and big["fields"]["strategy"] == "alpha"
