"""A market worker's Kafka path (issue 27 item 2): the same ``md.book`` backlog drained
by one market worker with each reader client in turn (``kafka.reader_client``).

``python -m bench.worker_kafka [--rounds N] [--seconds S] [--baseline DIR] [--profile DIR]
[--role book]``:
the simulator and the ingestor make a backlog for ``S`` seconds (3 instruments, one
``md.trades`` per ~4 updates), then one market worker drains it with aiokafka's reader and
with librdkafka's, alternating, ``N`` rounds, each run with an app id of its own (its own
consumer groups and tables, so each reads the whole backlog). Each row: CPU of the
worker's process (all threads) per ``book.top`` over the middle 90 % of its output, and
the drain rate. ``--baseline DIR``: a third variant, the worker run from another checkout
(e.g. ``git archive`` of an earlier commit) with that code's defaults; run the bench from
another directory (``python -m`` puts the working directory before ``PYTHONPATH``).
``--profile DIR``: py-spy records each run's worker for 8 s from its first ``book.top``
(raw collapsed stacks, one file a run, and each thread's share of the CPU beside it).
py-spy stops the process to sample it: a profiled run's CPU per update is not comparable
with the others. ``--role book``: the worker runs the book stage only (a role of
``workers.agents`` with ``streams.book`` alone), not the ``colocated`` market worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
from pathlib import Path

from algostream.kafka.provision import delete_run_topics
from bench.throughput import drain, ingest_and_backlog

VARIANTS = {
    "aiokafka": {"ALGOSTREAM__KAFKA__READER_CLIENT": "aiokafka"},
    "rdkafka": {"ALGOSTREAM__KAFKA__READER_CLIENT": "rdkafka"},
}
#: ``--role``: the stages a drained worker runs (``market``: the layout's market worker)
ROLES = {"market": None, "book": ["streams.book"]}


async def main(
    rounds: int,
    seconds: float,
    profile: Path | None,
    only: list[str],
    baseline: Path | None,
    role: str = "market",
) -> None:
    if baseline is not None:  # another checkout's code in the worker (its own defaults)
        VARIANTS["baseline"] = {"PYTHONPATH": str(baseline)}
        only = [*only, "baseline"]
    modules = ROLES[role]
    role_env = (
        {} if modules is None else {"ALGOSTREAM__WORKERS__AGENTS": json.dumps({role: modules})}
    )
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    ing, env, settings, work = await ingest_and_backlog(bootstrap, seconds)
    print(f"backlog: {ing.rate * seconds:,.0f} md.book records (ingest {ing.rate:,.0f}/s)")
    results: dict[str, list[float]] = {v: [] for v in only}
    try:
        for i in range(rounds):
            for name in only:
                out = None if profile is None else profile / f"{name}-{i}.txt"
                d = await drain(
                    env,
                    settings,
                    work,
                    1,
                    run=f"-{name}{i}",
                    extra_env=role_env | VARIANTS[name],
                    profile=out,
                    role=role,
                )
                results[name].append(d.cpu_us)
                print(
                    f"| {name} | {i} | {d.records:,} | {d.seconds:.1f} | {d.rate:,.0f} "
                    f"| {d.cpu_us:.1f} |",
                    flush=True,
                )
    finally:
        await delete_run_topics(settings.kafka)
    for name, cpu in results.items():
        print(f"{name}: median {statistics.median(cpu):.1f} µs / update ({cpu})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--only", nargs="*", default=list(VARIANTS))
    parser.add_argument("--baseline", type=Path, help="a checkout to run the worker from too")
    parser.add_argument("--role", choices=list(ROLES), default="market")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(args.rounds, args.seconds, args.profile, args.only, args.baseline, args.role))
