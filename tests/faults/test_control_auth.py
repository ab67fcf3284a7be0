"""Only the operator's signed commands move the kill switch (real broker, real worker).

The issue this answers: a copy of the CLI's HALT record with ``actor`` changed, and then a
forged RESUME, both took effect within 10 ms. Here the CLI signs a HALT with the operator
key; a forged copy (actor changed), an exact replay, an unsigned RESUME and one signed
with another key are each refused: one ``dlq`` record and one ``CONTROL_REFUSED``
``risk.events`` record naming it, and trading stays HALTED until the CLI's own RESUME.
The key appears in no log line and on no topic.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from algostream.model import (
    ControlAction,
    ControlCommand,
    DeadLetter,
    OrderRejected,
    OrderRequest,
    RiskEvent,
    RiskEventKind,
    TradingState,
)
from algostream.risk.control_auth import sign
from tests.kafka_kit import decoded, produce, read_until
from tests.trading_kit import book_top, proposal

ARGS = ("worker", "trading", "--web-port", "0", "--metrics-port", "0")
ACTOR = ("--actor", "alice")


def control_cli(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algostream", "control", action, "--reason", "drill", *ACTOR],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def decision(s, coid: str):  # type: ignore[no-untyped-def]
    """The decision (approval or rejection) of ``coid``, waiting for it."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for topic, kind in (("orders.approved", OrderRequest), ("orders.rejected", OrderRejected)):
            msgs = await read_until(s, topic, lambda _: False, timeout_s=0.5)
            for rec in decoded(msgs, kind):
                if rec.client_order_id == coid:  # type: ignore[attr-defined]
                    return rec
    raise AssertionError(f"{coid} was not decided")


async def risk_events(s, kind: RiskEventKind, n: int) -> list[RiskEvent]:  # type: ignore[no-untyped-def]
    def enough(msgs) -> bool:  # type: ignore[no-untyped-def]
        return sum(e.kind is kind for e in decoded(msgs, RiskEvent)) >= n  # type: ignore[attr-defined]

    msgs = await read_until(s, "risk.events", enough, timeout_s=60)
    return [e for e in decoded(msgs, RiskEvent) if e.kind is kind]  # type: ignore[attr-defined, misc]


async def test_forged_replayed_and_unsigned_commands_are_refused(  # type: ignore[no-untyped-def]
    provisioned, supervisor, kafka_env
) -> None:
    s = provisioned
    key = f"ctlkey-{uuid.uuid4().hex}-{uuid.uuid4().hex}"
    env = kafka_env | {"ALGOSTREAM_CONTROL_KEY": key}
    supervisor.start("trading", *ARGS, env=env)
    await produce(s, "book.top", [book_top(0, depth="50")])
    n = 0
    while True:  # the first approval: the worker decides
        n += 1
        await produce(s, "orders.proposed", [proposal(n, quantity="0.01")])
        if await read_until(s, "orders.approved", lambda m: len(m) >= 1, timeout_s=2):
            break
        assert n < 60, supervisor.tail("trading")

    unsigned_cli = control_cli("halt", kafka_env)  # no key: the CLI refuses to send
    assert unsigned_cli.returncode == 2 and "ALGOSTREAM_CONTROL_KEY" in unsigned_cli.stdout
    done = control_cli("halt", env)
    assert done.returncode == 0, done.stdout + done.stderr
    [halt] = await risk_events(s, RiskEventKind.CONTROL, 1)
    assert (halt.state, halt.actor) == (TradingState.HALTED, "alice")
    [original] = await read_until(s, "control", lambda m: len(m) >= 1, timeout_s=10)
    cmd = ControlCommand.decode(original.value)
    assert cmd.signature and cmd.nonce and key not in original.value.decode()

    now = time.time_ns()
    resume = cmd.model_copy(
        update={"action": ControlAction.RESUME, "ts_init": now, "record_id": "r-x"}
    )
    attacks = [
        cmd.model_copy(update={"actor": "mallory", "action": ControlAction.RESUME}).encode(),
        original.value,  # the very same bytes again: a replay
        resume.model_copy(update={"signature": None, "nonce": None}).encode(),
        sign(resume, b"not-the-operator-key-0123456789abcdef").encode(),
    ]
    await produce(s, "control", [(b"ALL:*", value) for value in attacks])
    refused = await risk_events(s, RiskEventKind.CONTROL_REFUSED, 4)
    assert [e.detail["refused"] for e in refused] == ["forged", "replayed", "unsigned", "forged"]
    assert [e.detail["source"] for e in refused] == [f"control/0/{o}" for o in range(1, 5)]
    assert all(e.state is TradingState.HALTED for e in refused)
    letters = decoded(await read_until(s, "dlq", lambda m: len(m) >= 4, timeout_s=30), DeadLetter)
    assert sorted(d.offset for d in letters) == [1, 2, 3, 4], letters  # type: ignore[attr-defined]
    assert all(d.error_type == "ControlAuthError" for d in letters)  # type: ignore[attr-defined]

    p = proposal(n + 1, quantity="0.01")
    await produce(s, "orders.proposed", [p])
    rejected = await decision(s, p.client_order_id)
    assert isinstance(rejected, OrderRejected) and rejected.reason == "TRADING_HALTED"

    assert control_cli("resume", env).returncode == 0
    await risk_events(s, RiskEventKind.CONTROL, 2)
    await produce(s, "book.top", [book_top(1, depth="50")])
    p = proposal(n + 2, quantity="0.01")
    await produce(s, "orders.proposed", [p])
    assert isinstance(await decision(s, p.client_order_id), OrderRequest)

    supervisor.stop("trading")
    texts = [supervisor.children["trading"].log.read_text(errors="replace")]
    for topic in ("control", "dlq", "risk.events"):
        texts += [m.value.decode() for m in await read_until(s, topic, lambda _: False, 1)]
    assert not [t for t in texts if key in t], "the operator key leaked"
