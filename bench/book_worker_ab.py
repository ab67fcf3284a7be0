"""One market worker draining an ``md.book`` backlog, code variants alternating (issue 27
item 2): ``python -m bench.book_worker_ab --old DIR [--rounds N] [--seconds S]``.

The simulator and ingestor leave a backlog of ``md.book`` (``bench.throughput``'s
``ingest_and_backlog``, 3 instruments); then one market worker drains it from the start
(``bench.throughput.drain``: first to last ``book.top`` sent, the middle 90 %, and the
worker's CPU over that time), once per variant per round, in turn (each round starting
with the next variant: the order showed in the figures), each in a consumer
group of its own: the code in ``DIR`` (a checkout of the code before, e.g. ``git archive
REV | tar -x -C DIR``), this checkout with its compiled book path, and this checkout on
the pure-Python path (``ALGOSTREAM_PURE_PYTHON=1``). Prints one table row per drain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from algostream.kafka.provision import delete_run_topics
from bench import throughput

HERE = str(Path(__file__).resolve().parent.parent)


async def main(old: str, rounds: int, seconds: float) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    ingest, env, settings, work = await throughput.ingest_and_backlog(bootstrap, seconds)
    variants = {
        "old": {"PYTHONPATH": old},
        "compiled": {"PYTHONPATH": HERE},
        "pure": {"PYTHONPATH": HERE, "ALGOSTREAM_PURE_PYTHON": "1"},
    }
    # a worker is `python -m algostream`, which puts its working directory first on its
    # path: from this checkout's, every variant would run this checkout's code
    os.chdir(work)
    print(f"backlog: {ingest.rate * seconds:,.0f} md.book records (approx.)")
    print("| round | code | updates | µs CPU / update | updates / s | load |")
    print("|---|---|---|---|---|---|")
    try:
        names = list(variants)
        for r in range(rounds):
            for name in names[r % 3 :] + names[: r % 3]:  # each first in turn
                extra = variants[name]
                app_id = f"{env['ALGOSTREAM__KAFKA__APP_ID']}-{name}{r}"
                run_env = env | extra | {"ALGOSTREAM__KAFKA__APP_ID": app_id}
                run_work = work / f"{name}{r}"
                run_work.mkdir()
                d = await throughput.drain(run_env, settings, run_work, 1)
                load = os.getloadavg()[0]
                print(
                    f"| {r + 1} | {name} | {d.records:,} | {d.cpu_us:.1f} | {d.rate:,.0f} "
                    f"| {load:.1f} |",
                    flush=True,
                )
    finally:
        await delete_run_topics(settings.kafka)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="a checkout of the code before")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds of ingest")
    args = ap.parse_args()
    asyncio.run(main(args.old, args.rounds, args.seconds))
