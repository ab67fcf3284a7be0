"""Several strategies on one trading worker (real broker): one is halted, the other trades.

The operator halts strategy ``alpha`` with ``algostream control halt --strategy alpha``
(signed); ``alpha``'s next proposal is refused, ``beta``'s is approved and filled, and the
fill comes back on ``positions`` and ``pnl`` attributed to ``beta`` beside the account's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

from algostream.model import OrderRejected, OrderRequest, PnL, Position, RiskEvent, RiskEventKind
from tests.faults.test_control_auth import decision
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import book_top, proposal

ARGS = ("worker", "trading", "--web-port", "0", "--metrics-port", "0")
STRATEGIES = json.dumps(
    [
        {"id": "alpha", "strategy": "rsi_mean_reversion"},
        {"id": "beta", "strategy": "macd_crossover", "max_position_size": "1"},
    ]
)


def of(strategy: str, n: int) -> OrderRequest:
    return proposal(n, quantity="0.01", prefix=strategy).model_copy(
        update={"strategy": strategy, "record_id": f"prop-{strategy}-{n}"}
    )


async def test_halt_one_strategy_while_the_other_trades(  # type: ignore[no-untyped-def]
    provisioned, supervisor, kafka_env
) -> None:
    s = provisioned
    key = f"ctlkey-{uuid.uuid4().hex}-{uuid.uuid4().hex}"
    env = kafka_env | {"ALGOSTREAM_CONTROL_KEY": key, "ALGOSTREAM__SIGNAL__STRATEGIES": STRATEGIES}
    supervisor.start("trading", *ARGS, env=env)
    await produce(s, "book.top", [book_top(0, depth="50")])
    n = 0
    while True:  # the first approval: the worker decides
        n += 1
        await produce(s, "orders.proposed", [of("alpha", n)])
        if await read_until(s, "orders.approved", lambda m: len(m) >= 1, timeout_s=2):
            break
        assert n < 60, supervisor.tail("trading")

    unknown = subprocess.run(
        [sys.executable, "-m", "algostream", "control", "halt", "--reason", "drill",
         "--strategy", "gamma"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unknown.returncode == 2 and "gamma" in unknown.stdout
    done = subprocess.run(
        [sys.executable, "-m", "algostream", "control", "halt", "--reason", "drill",
         "--strategy", "alpha"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr

    def halted(msgs) -> bool:  # type: ignore[no-untyped-def]
        return any(
            e.kind is RiskEventKind.CONTROL and e.detail.get("strategy") == "alpha"  # type: ignore[attr-defined]
            for e in decoded(msgs, RiskEvent)
        )

    assert halted(await read_until(s, "risk.events", halted, timeout_s=60))

    await produce(s, "orders.proposed", [of("alpha", n + 1), of("beta", n + 2)])
    refused = await decision(s, f"alpha-{n + 1}")
    assert isinstance(refused, OrderRejected) and refused.limit == "STRATEGY_HALTED"
    approved = await decision(s, f"beta-{n + 2}")
    assert isinstance(approved, OrderRequest) and approved.strategy == "beta"

    def attributed(msgs) -> bool:  # type: ignore[no-untyped-def]
        return any(p.strategy == "beta" for p in decoded(msgs, Position))  # type: ignore[attr-defined]

    positions = decoded(await read_until(s, "positions", attributed, timeout_s=60), Position)
    beta = [p for p in positions if p.strategy == "beta"]  # type: ignore[attr-defined]
    assert beta and beta[-1].quantity == approved.quantity  # type: ignore[attr-defined]
    assert any(p.strategy is None for p in positions)  # type: ignore[attr-defined]
    pnl = decoded(await read_until(s, "pnl", lambda m: len(m) >= 2, timeout_s=60), PnL)
    assert {p.strategy for p in pnl} >= {"beta", None}  # type: ignore[attr-defined]

    # algostream status: per-strategy state, positions and P&L; the worker groups' lag
    from algostream.config import load_settings
    from algostream.status import collect

    strategies, lags = await collect(load_settings(env=env))
    by = {st.strategy: st for st in strategies}
    assert by["alpha"].state.value == "HALTED" and by["beta"].state.value == "ACTIVE"
    assert by["beta"].positions == {approved.instrument: approved.quantity}
    assert by["beta"].equity is not None and by["*"].positions
    groups = {lag.group for lag in lags}
    app_id = env["ALGOSTREAM__KAFKA__APP_ID"]
    assert f"{app_id}-trading" in groups, lags
    assert all(lag.lag >= 0 for lag in lags)
    cli = subprocess.run(
        [sys.executable, "-m", "algostream", "status"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "alpha" in cli.stdout and "HALTED" in cli.stdout and f"{app_id}-trading" in cli.stdout
