"""Tick-to-trade with the ingestor on each producer client, alternating runs (issue 27):
``python -m bench.ingest_ab [--duration S] [--rounds N]`` prints one row per run (layout
``colocated``, the simulator at 300 depth events/s). ``--issue27``: the librdkafka
ingestor before (websockets, one ``md.raw`` record per frame) and after (picows,
``md.raw`` batched) instead of the two clients."""

from __future__ import annotations

import argparse
import asyncio
import os

from bench import pipeline


async def main(duration_s: float, rounds: int, issue27: bool = False) -> None:
    from bench.throughput import CLIENTS, ISSUE27

    variants = ISSUE27 if issue27 else {c: CLIENTS[c] for c in ("rdkafka", "aiokafka")}
    print(
        "| ingest client | fills | tick-to-trade p50 ms | p99 ms | ingest p50 µs | ingest CPU % |"
    )
    print("|---|---|---|---|---|---|")
    for _ in range(rounds):
        for client, extra in variants.items():
            run = await pipeline.run_pipeline(
                os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"),
                rate=300.0,
                duration_s=duration_s,
                layout="colocated",
                extra_env=extra,
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
    ap.add_argument("--issue27", action="store_true", help="before/after md.raw batching+picows")
    a = ap.parse_args()
    asyncio.run(main(a.duration, a.rounds, a.issue27))
