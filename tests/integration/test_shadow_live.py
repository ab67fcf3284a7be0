"""A shadow strategy on the live topics (real broker, the CLI's shadow worker process):
its orders are paper-filled against the live book onto ``shadow.*`` and never reach the
venue, even with ``execution.paper_trading: false``."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import httpx

from algostream.config import load_settings
from algostream.model.records import Bar, BookTop, OrderEvent
from tests.kafka_kit import decoded, produce, read_until
from tests.notify_kit import webhook_server
from tests.unit.signals.test_shadow import ENV, live_feed


async def test_shadow_orders_are_paper_filled_and_never_reach_the_venue(  # type: ignore[no-untyped-def]
    provisioned, supervisor, kafka_env
) -> None:
    s = provisioned
    async with webhook_server() as (venue, got):
        env = (
            kafka_env
            | ENV
            | {
                "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": venue,
                "ALGOSTREAM__EXECUTION__USER_STREAM_URL": venue.replace("http", "ws"),
            }
        )
        assert load_settings(env=env).execution.paper_trading is False
        _, feed = live_feed()
        await produce(s, "book.top", [r for r in feed if isinstance(r, BookTop)])
        await produce(s, "bars.1s", [r for r in feed if isinstance(r, Bar) and r.interval == "1s"])
        supervisor.start(
            "shadow", "shadow", "run", "--from-beginning", "--metrics-port", "0", env=env
        )

        def filled(msgs) -> bool:  # type: ignore[no-untyped-def]
            return sum(e.fill_qty > 0 for e in decoded(msgs, OrderEvent)) >= 3  # type: ignore[attr-defined]

        events = await read_until(s, "shadow.orders.events", filled, timeout_s=120)
        assert filled(events), supervisor.tail("shadow")
        fills = [e for e in decoded(events, OrderEvent) if e.fill_qty > 0]  # type: ignore[attr-defined]
        assert {(f.strategy, f.venue) for f in fills} == {("new_rsi", "PAPER")}  # type: ignore[attr-defined]
        assert await read_until(s, "shadow.pnl", lambda m: len(m) >= 1, timeout_s=30)
        for live in ("orders.proposed", "orders.approved", "orders.events", "signals"):
            assert await read_until(s, live, lambda m: len(m) > 0, timeout_s=1) == [], live
        assert got.requests == []  # the venue heard nothing
        port = re.search(r"metrics on port (\d+)", supervisor.tail("shadow"))
        assert port, supervisor.tail("shadow")
        scraped = httpx.get(f"http://127.0.0.1:{port.group(1)}/metrics", timeout=10).text
        assert 'algostream_strategy_equity{account="paper",mode="shadow",strategy="new_rsi"}' in (
            scraped
        )

        report = subprocess.run(
            [sys.executable, "-m", "algostream", "shadow", "report", "--shadow", "new_rsi",
             "--live", "live_rsi"],
            env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert report.returncode == 0, report.stdout + report.stderr
        assert "shadow: new_rsi" in report.stdout and "fills" in report.stdout
