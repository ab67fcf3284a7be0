"""The example agent of README's guide, run as a user runs it: its own worker role from
``workers.agents``, against the real broker. A burst of trades comes out as a
``VolumeSpike`` on ``alerts.volume``; a record that is not a trade goes to ``dlq`` with
its reason and the agent goes on."""

from __future__ import annotations

import json

from algostream.model import DeadLetter, VolumeSpike
from streams.volume_spikes import WINDOW_NS
from tests.kafka_kit import decoded, produce, read_until
from tests.unit.streams.test_volume_spikes import pandas_spikes, trades


async def test_volume_spike_agent_in_its_own_worker(provisioned, supervisor, kafka_env) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    ticks = trades(7)
    want = pandas_spikes(ticks)
    assert len(want) >= 3
    half = len(ticks) // 2
    supervisor.start(
        "alerts",
        "worker",
        "alerts",
        "--web-port",
        "0",
        "--metrics-port",
        "0",
        env={
            **kafka_env,
            "ALGOSTREAM__WORKERS__AGENTS": json.dumps({"alerts": ["streams.volume_spikes"]}),
        },
    )
    bad = json.dumps({**json.loads(ticks[0].encode()), "price": "ten"}).encode()
    await produce(s, "md.trades", [*ticks[:half], (ticks[0].key.encode(), bad)])
    await produce(s, "md.trades", ticks[half:])

    msgs = await read_until(s, "alerts.volume", lambda m: len(m) >= len(want), timeout_s=120)
    spikes = decoded(msgs, VolumeSpike)
    assert [(x.window_start_ns, x.volume) for x in spikes] == want, supervisor.tail("alerts")  # type: ignore[attr-defined]
    assert all(x.window_ns == WINDOW_NS and x.ratio >= 5 for x in spikes)  # type: ignore[attr-defined]

    letters = decoded(await read_until(s, "dlq", lambda m: len(m) >= 1), DeadLetter)
    assert letters[0].source_topic.endswith("md.trades")  # type: ignore[attr-defined]
    assert letters[0].agent == "volume-spikes"  # type: ignore[attr-defined]
    assert "'price' = 'ten'" in letters[0].reason  # type: ignore[attr-defined]
    assert supervisor.children["alerts"].alive


async def test_volume_spike_stage_in_the_market_worker_takes_the_bar_stages_trades(
    provisioned, supervisor, kafka_env
) -> None:  # type: ignore[no-untyped-def]
    """Named in the ``market`` role, the same stage takes the trades the bar stage reads,
    in-process (the market worker's reader holds ``md.trades``: a Faust agent of its own
    there would get none)."""
    s = provisioned
    ticks = trades(7)
    want = pandas_spikes(ticks)
    supervisor.start(
        "market",
        "worker",
        "market",
        "--web-port",
        "0",
        "--metrics-port",
        "0",
        env={
            **kafka_env,
            "ALGOSTREAM__WORKERS__AGENTS": json.dumps({"market": ["streams.volume_spikes"]}),
        },
    )
    await produce(s, "md.trades", ticks)
    msgs = await read_until(s, "alerts.volume", lambda m: len(m) >= len(want), timeout_s=120)
    spikes = decoded(msgs, VolumeSpike)
    assert [(x.window_start_ns, x.volume) for x in spikes] == want, supervisor.tail("market")  # type: ignore[attr-defined]
    assert supervisor.children["market"].alive
