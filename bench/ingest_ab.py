"""Tick-to-trade with the ingestor on each producer client, alternating runs (issue 27):
``python -m bench.ingest_ab [--duration S] [--rounds N]`` prints one row per run (layout
``colocated``, the simulator at 300 depth events/s)."""

from __future__ import annotations

import argparse
import asyncio
import os

from bench import pipeline


async def main(duration_s: float, rounds: int) -> None:
    print(
        "| ingest client | fills | tick-to-trade p50 ms | p99 ms | ingest p50 µs | ingest CPU % |"
    )
    print("|---|---|---|---|---|---|")
    for _ in range(rounds):
        for client in ("rdkafka", "aiokafka"):
            run = await pipeline.run_pipeline(
                os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                rate=300.0,
                duration_s=duration_s,
                layout="colocated",
                extra_env={"ALGOSTREAM__KAFKA__INGEST_CLIENT": client},
            )
            e2e = run.end_to_end
            ingest = next((s for s in run.stages if s.name.startswith("ingest")), None)
            cpu = (
                sum(s.cpu_pct.get("ingest", 0.0) for s in run.samples) / len(run.samples)
                if run.samples
                else 0.0
            )
            print(
                f"| {client} | {e2e.n if e2e else 0} | "
                f"{e2e.p50_us / 1000 if e2e else 0:.1f} | {e2e.p99_us / 1000 if e2e else 0:.1f} | "
                f"{ingest.p50_us if ingest else 0:.0f} | {cpu:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--duration", type=float, default=60.0)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    asyncio.run(main(a.duration, a.rounds))
