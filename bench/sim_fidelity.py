"""Depth stream pacing of the simulator: messages per second and update ids per message
on ``@depth@100ms`` (Binance: at most 10 a second, each spanning the interval's ids),
batched (the default) and one message per event (``batch_depth=False``).

``python -m bench.sim_fidelity`` prints a BENCHMARKS.md section (about 30 s).
"""

from __future__ import annotations

import asyncio
import time

import orjson
from websockets.asyncio.client import connect

from algostream.sim import SimExchange, SimMarket, SimServer

SECONDS = 3.0
RATES = (100, 1_000, 5_000)


async def measure(rate: int, batch: bool) -> tuple[float, float, int]:
    """(messages/s, mean update ids per message, max ids in one message) for one symbol."""
    market = SimMarket.create(["BTCUSDT"], seed=1, levels=50)
    server = SimServer(SimExchange(market, rate=rate, batch_depth=batch))
    await server.start()
    spans: list[int] = []
    try:
        async with connect(f"{server.ws_url}/ws/btcusdt@depth@100ms", max_queue=None) as ws:
            await ws.recv()  # the stream is flowing
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < SECONDS:
                frame = orjson.loads(await ws.recv())
                spans.append(frame["u"] - frame["U"] + 1)
    finally:
        await server.stop()
    return len(spans) / elapsed, sum(spans) / len(spans), max(spans)


async def main() -> str:
    lines = [
        "## Simulator depth pacing (`python -m bench.sim_fidelity`)",
        "",
        f"One client on `btcusdt@depth@100ms`, one symbol, {SECONDS:.0f} s per row. Binance",
        "sends at most 10 messages a second on this stream, each spanning every update id of",
        "its 100 ms; before batching the simulator sent one message per market event.",
        "",
        "| events/s | mode | messages/s | update ids per message (mean) | max |",
        "|---|---|---|---|---|",
    ]
    for rate in RATES:
        for batch in (True, False):
            per_s, mean, most = await measure(rate, batch)
            mode = "batched (default)" if batch else "one per event"
            lines.append(f"| {rate} | {mode} | {per_s:.1f} | {mean:.1f} | {most} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(asyncio.run(main()))
