"""A signal of a strategy this deployment does not run is not sized silently: the orders
agent sends it to ``dlq`` naming the strategy and the live ids, and sizes the others."""

from __future__ import annotations

import time

from algostream.model import DeadLetter, OrderRequest, Side, Signal
from tests.kafka_kit import decoded, produce, read_until


def signal(n: int, strategy: str) -> Signal:
    now = time.time_ns()
    return Signal(
        instrument="BINANCE:ETHUSDT",
        ts_event=now,
        ts_init=now,
        record_id=f"sig-{strategy}-{n}",
        lineage_id=f"lin-{n}",
        strategy=strategy,
        side=Side.BUY,
        strength=1.0,
        confidence=1.0,
        reason="test",
        price="2000",
    )


async def test_unknown_strategy_signal_goes_to_dlq(provisioned, supervisor) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    split = {"ALGOSTREAM__WORKERS__LAYOUT": "split", "ALGOSTREAM__SIGNAL__IN_PROCESS": "false"}
    supervisor.start(
        "signals", "worker", "signals", "--web-port", "0", "--metrics-port", "0", env=split
    )
    await produce(s, "signals", [signal(1, "nobody"), signal(2, "rsi_mean_reversion")])

    orders = decoded(
        await read_until(s, "orders.proposed", lambda m: len(m) >= 1, timeout_s=120),
        OrderRequest,
    )
    assert [o.lineage_id for o in orders] == ["sig-rsi_mean_reversion-2"]  # type: ignore[attr-defined]
    [letter] = decoded(await read_until(s, "dlq", lambda m: len(m) >= 1), DeadLetter)
    assert letter.agent == "orders"  # type: ignore[attr-defined]
    assert "strategy='nobody' is not a live strategy" in letter.reason  # type: ignore[attr-defined]
    assert "rsi_mean_reversion" in letter.reason  # type: ignore[attr-defined]
