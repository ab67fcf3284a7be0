"""Notifications: what records call for, delivery to a local HTTP server (generic JSON and
the Telegram Bot API format), retries, rate limit, a failing webhook that blocks nothing,
and secrets only from the environment."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
import structlog

from algostream.config import ConfigError, NotifyConfig, WebhookConfig, load_settings
from algostream.model.enums import (
    IntegrityKind,
    OrderStatus,
    OrderType,
    RiskEventKind,
    Side,
    TradingState,
)
from algostream.model.records import BookIntegrity, OrderEvent, PnL, RiskEvent
from algostream.notify import DAY_NS, Notice, NoticeMaker, Notifier, WebhookSender
from tests.notify_kit import webhook_server

TOKEN = "123456:telegram-test-token-abcdef"


def risk_event(kind: RiskEventKind, state: TradingState, **detail: str) -> RiskEvent:
    return RiskEvent(
        instrument="ALL:*", ts_event=5, ts_init=5, record_id=f"r-{kind}-{state}",
        lineage_id="x", kind=kind, state=state, actor="risk", reason="loss over 5000",
        detail=detail,
    )  # fmt: skip


def fill(qty: str, price: str, ts: int = 7) -> OrderEvent:
    return OrderEvent(
        instrument="BINANCE:BTCUSDT", ts_event=ts, ts_init=ts, record_id=f"f-{qty}-{price}",
        lineage_id="a", account="paper", client_order_id="c1", status=OrderStatus.FILLED,
        side=Side.BUY, order_type=OrderType.MARKET, quantity=Decimal(qty),
        fill_price=Decimal(price), fill_qty=Decimal(qty), cum_qty=Decimal(qty), strategy="alpha",
    )  # fmt: skip


def pnl(ts: int, equity: str, strategy: str | None = None) -> PnL:
    return PnL(
        instrument="ACCOUNT:PAPER", ts_event=ts, ts_init=ts, record_id=f"p-{ts}-{strategy}",
        lineage_id="x", account="paper", realized_pnl=0, unrealized_pnl=0, fees=0,
        equity=Decimal(equity), peak_equity=Decimal(equity), drawdown=0, exposure=0,
        strategy=strategy,
    )  # fmt: skip


def test_records_become_notices() -> None:
    maker = NoticeMaker(fill_notional_above=Decimal("1000"))
    (trip,) = maker.on_record(risk_event(RiskEventKind.BREAKER_TRIPPED, TradingState.HALTED))
    assert trip.kind == "breaker" and "loss over 5000" in trip.text
    (halt,) = maker.on_record(
        risk_event(RiskEventKind.CONTROL, TradingState.HALTED, strategy="alpha")
    )
    assert (halt.kind, halt.title) == ("state", "HALTED: alpha")
    assert maker.on_record(risk_event(RiskEventKind.CONTROL, TradingState.ACTIVE)) == []
    gap = BookIntegrity(
        instrument="BINANCE:BTCUSDT", ts_event=1, ts_init=1, record_id="i", lineage_id="x",
        kind=IntegrityKind.STALE, detail="no update for 6 s",
    )  # fmt: skip
    assert [n.kind for n in maker.on_record(gap)] == ["integrity"]
    assert maker.on_record(fill("0.01", "50000")) == []  # 500 < 1000
    (big,) = maker.on_record(fill("0.1", "50000"))
    assert big.kind == "fill" and big.fields["notional"] == "5000.0"


def test_daily_summary_when_a_new_utc_day_begins() -> None:
    maker = NoticeMaker(fill_notional_above=None)
    day = 20_000 * DAY_NS
    assert maker.on_record(pnl(day + 1, "100000")) == []
    assert maker.on_record(pnl(day + 2, "100000", "alpha")) == []
    assert maker.on_record(pnl(day + 9, "100250")) == []
    assert maker.on_record(pnl(day + 9, "99900", "alpha")) == []
    (summary,) = maker.on_record(pnl(day + DAY_NS + 1, "100300"))
    assert summary.kind == "daily_pnl" and summary.title == "Daily P&L 2024-10-04"
    assert summary.fields == {"paper": "100250 (+250)", "paper/alpha": "99900 (-100)"}
    assert maker.on_record(pnl(day + DAY_NS + 2, "99000", "alpha")) == []  # once a day


def notice(n: int = 0) -> Notice:
    return Notice("breaker", f"Breaker tripped {n}", "why", 1_700_000_000_000_000_000)


async def test_json_and_telegram_webhooks_receive_their_formats() -> None:
    async with webhook_server() as (url, got):
        config = NotifyConfig(
            webhooks=(
                WebhookConfig(name="ops", kind="json", url=f"{url}/hook", secret=TOKEN[:10]),
                WebhookConfig(
                    name="tg", kind="telegram", url=url, chat_id="-100", secret=TOKEN,
                    events=("breaker", "daily_pnl"),
                ),
            )
        )  # fmt: skip
        notifier = Notifier(config)
        notifier.start()
        notifier.on_record(risk_event(RiskEventKind.BREAKER_TRIPPED, TradingState.HALTED))
        notifier.on_record(risk_event(RiskEventKind.CONTROL, TradingState.REDUCING))
        (body, state) = await got.wait_for("/hook", 2)
        assert body["kind"] == "breaker" and body["title"].startswith("Breaker tripped")
        assert state["kind"] == "state" and body["ts"].endswith("+00:00")
        auth = next(h for p, _, h in got.requests if p == "/hook")["Authorization"]
        assert auth == f"Bearer {TOKEN[:10]}"
        (tg,) = await got.wait_for(f"/bot{TOKEN}/sendMessage", 1)
        assert tg["chat_id"] == "-100" and tg["text"].startswith("Breaker tripped")
        await notifier.stop()
        assert len(got.on(f"/bot{TOKEN}/sendMessage")) == 1  # not subscribed to "state"


async def test_a_failing_delivery_is_retried_then_given_up_logging_no_secret() -> None:
    async with webhook_server() as (url, got):
        got.fail_first["/flaky"] = [503, 500]
        got.fail_first["/down"] = [500] * 10
        config = NotifyConfig(retries=2, retry_delay_ms=10)
        flaky = WebhookSender(WebhookConfig(name="f", url=f"{url}/flaky"), config)
        with structlog.testing.capture_logs() as logs:
            assert await flaky.send(notice()) is True
            assert len(got.on("/flaky")) == 3 and flaky.sent == 1
            tg = WebhookSender(
                WebhookConfig(name="t", kind="telegram", url=f"{url}/down", chat_id="1",
                              secret=TOKEN),
                config,
            )  # fmt: skip
            got.fail_first[f"/down/bot{TOKEN}/sendMessage"] = [500] * 10
            assert await tg.send(notice()) is False
        assert tg.failed == 1 and len(got.on(f"/down/bot{TOKEN}/sendMessage")) == 3
        assert logs and TOKEN not in json.dumps(logs, default=str)


async def test_rate_limit_holds_back_what_is_over_the_limit() -> None:
    async with webhook_server() as (url, got):
        sender = WebhookSender(
            WebhookConfig(name="r", url=f"{url}/r"), NotifyConfig(max_per_minute=1)
        )
        task = asyncio.create_task(sender.run())
        sender.offer(notice(1))
        sender.offer(notice(2))
        await got.wait_for("/r", 1)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # the second waits for its turn (~60 s)
            assert len(got.on("/r")) == 1
            await asyncio.sleep(0.05)
        assert len(sender.queue) == 0 or list(sender.queue) == [notice(2)]
        task.cancel()


async def test_a_hung_webhook_blocks_neither_the_caller_nor_the_other_webhooks() -> None:
    async with webhook_server() as (url, got):
        got.hang.add("/hung")
        config = NotifyConfig(
            webhooks=(
                WebhookConfig(name="hung", url=f"{url}/hung"),
                WebhookConfig(name="ok", url=f"{url}/ok"),
            ),
            timeout_ms=60_000,
            queue_size=10,
            max_per_minute=1000,
        )
        notifier = Notifier(config)
        notifier.start()
        start = time.monotonic()
        for _ in range(50):  # as the trading stages would produce them
            notifier.on_record(risk_event(RiskEventKind.BREAKER_TRIPPED, TradingState.HALTED))
        assert time.monotonic() - start < 0.5  # offering never waits for a delivery
        await got.wait_for("/ok", 10)  # the newest 10: the queue keeps no more
        hung = notifier.senders[0]
        assert hung.dropped == 40 and len(hung.queue) == 9  # one is stuck in delivery
        notifier.on_record(risk_event(RiskEventKind.BREAKER_TRIPPED, TradingState.REDUCING))
        await got.wait_for("/ok", 11)  # the other webhook goes on delivering
        await notifier.stop(drain_s=0.1)


def test_webhook_secrets_come_only_from_the_environment(tmp_path: Path) -> None:
    hook = {"name": "tg", "kind": "telegram", "chat_id": "-1", "secret_env": "TG_TOKEN"}
    cfg = tmp_path / "system.json"
    cfg.write_text(json.dumps({"notify": {"webhooks": [hook]}}))
    s = load_settings(cfg, env={"TG_TOKEN": TOKEN})
    (loaded,) = s.notify.webhooks
    assert loaded.secret is not None and loaded.secret.get_secret_value() == TOKEN
    assert TOKEN not in repr(s) and TOKEN not in json.dumps(s.masked())
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.0\.secret_env.*TG_TOKEN"):
        load_settings(cfg, env={})
    cfg.write_text(json.dumps({"notify": {"webhooks": [hook | {"secret": TOKEN}]}}))
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.0\.secret'") as err:
        load_settings(cfg, env={"TG_TOKEN": TOKEN})
    assert TOKEN not in str(err.value)
    cfg.write_text(json.dumps({"notify": {"webhooks": [{"name": "t", "kind": "telegram"}]}}))
    with pytest.raises(ConfigError, match=r"notify\.webhooks\.0"):
        load_settings(cfg, env={})
