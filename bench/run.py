"""``make bench``: run the benchmarks and rewrite bench/BENCHMARKS.md with the results.

Sections: per-stage latency of the pure processors (seed targets), the book stage's CPU
per update, peers side by side (cryptofeed's Binance handler among them),
ingest + book throughput with one and two market workers, tick-to-trade on the whole
pipeline. ``make soak`` (``python -m bench.run --soak``) runs the 10-minute soak and
replaces only its own section. Hand-written sections (profiling findings, the fencing
A/B of ``python -m bench.fencing``) are kept.

Needs a broker (``make bench`` starts the local one) at ``KAFKA_BOOTSTRAP`` or
127.0.0.1:9092.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import time
from pathlib import Path

from algostream.kafka.provision import delete_run_topics
from bench import bars, book_stage, peers, pipeline, stages, throughput
from bench.common import HEADER

OUT = Path(__file__).with_name("BENCHMARKS.md")
#: hand-run or slow sections a `make bench` run keeps as they are
KEEP = (
    "## Profiling",
    "## Soak",
    "## Earlier soak",
    "## Loaded soak",
    "## Faults",
    "## Simulator depth pacing",
    "## Fencing",
)


def bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")


def sections(text: str) -> dict[str, str]:
    """``## `` sections of an existing BENCHMARKS.md by heading line."""
    out: dict[str, str] = {}
    for part in re.split(r"(?m)^(?=## )", text):
        if part.startswith("## "):
            out[part.splitlines()[0]] = part.rstrip() + "\n"
    return out


def kept(existing: dict[str, str]) -> list[str]:
    return [body for head, body in existing.items() if head.startswith(KEEP)]


def header() -> list[str]:
    return [
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        "against the local single-node Kafka 3.9 broker (KRaft) on the same machine.",
        "Reproduce with `make bench` (about 12 minutes) and `make soak` (11 minutes).",
        "",
    ]


async def measure(duration_s: float, rate: float) -> list[str]:
    lines = [
        "## Per-stage latency (pure processors, in-process) vs the seed's targets",
        "",
        HEADER,
        *(lat.row(target) for lat, target in stages.main()),
        "",
        "## Book stage: CPU per update, Kafka stood in (issue 27 item 2)",
        "",
        "`python -m bench.book_stage`: `BookStage.handle` on batches of 500 `md.book` records "
        "(decode, book, `book.top` record and its encoding into aiokafka's producer batch, "
        "book-state writes); the consumer and the network send stood in. CPU time, best of 5. "
        "Each input on the compiled path (`algostream/marketdata/_fastbook.pyx`, issue 27) "
        "and on the pure-Python one (`ALGOSTREAM_PURE_PYTHON=1`). "
        "The recorded capture's 336 updates include 4 snapshots of 1,000 levels a side (each "
        "written to the table level by level), so its figure is mostly snapshots.",
        "",
        *book_stage.main(),
        "",
        "## Peers side by side (same recorded deltas, same process)",
        "",
        *peers.main(),
        "",
        *backtest_section(),
    ]
    ingest, env, settings, work = await throughput.ingest_and_backlog(bootstrap(), 40.0)
    one = await throughput.drain(env, settings, work, 1)
    expect = int(one.records / 0.9)  # drain() reports the middle 90%
    drains = [one, await throughput.drain(env, settings, work, 2, expect=expect)]
    await delete_run_topics(settings.kafka)
    lines += [
        "## Throughput: ingest + book path",
        "",
        "The simulator pushes depth updates as fast as it can to one ingestor (3 instruments,",
        "so 3 `md.book` partitions); then N market workers (one consumer group) drain the",
        "backlog. The drain rate (middle 90% of the output, by the `algostream-sent-ns` of",
        "`book.top`) is the highest rate the book path sustains: fed faster, its lag grows",
        "without bound. With two workers the rate includes the rebalance when the second",
        "joins; both workers, the ingestor's broker and Kafka share the same 2 cores. The",
        "market worker reads `md.book` and `md.trades` in `getmany` batches of up to 500",
        "(`streams.reader.PartitionReader`); the backlog has about one trade per four updates.",
        "CPU per update is the CPU the process(es) used over the same window (every thread),",
        "divided by the records: unlike the rate it does not depend on what else shared the",
        "cores, and 10^6 / it is what one core would sustain for that process alone.",
        "",
        "| stage | workers | records | seconds | msgs/s | CPU µs / update | one core's worth |",
        "|---|---|---|---|---|---|---|",
        f"| ingest (sim -> md.raw + md.book + md.trades) | 1 ingestor | - | - | "
        f"{ingest.rate:,.0f} md.book/s | {ingest.cpu_us:.0f} | {1e6 / ingest.cpu_us:,.0f}/s |"
        if ingest.cpu_us
        else "| ingest | 1 ingestor | - | - | - | - | - |",
        *(
            f"| book (md.book -> book.top + book-state table) | {d.workers} | {d.records} | "
            f"{d.seconds:.1f} | {d.rate:,.0f} | {d.cpu_us:.0f} | "
            f"{1e6 / d.cpu_us:,.0f}/s |"
            if d.cpu_us
            else f"| book | {d.workers} | {d.records} | {d.seconds:.1f} | {d.rate:,.0f} | - | - |"
            for d in drains
        ),
        "",
        f"The simulator used {ingest.sim_cpu:.0f}% of a core while the ingest was measured: at"
        " 100% it, not the ingestor, sets the ingest rate.",
        "",
    ]
    lines += [
        "## Tick-to-trade on the whole pipeline",
        "",
        "Simulator -> ingestor -> workers -> paper fill, in two worker layouts",
        "(`workers.layout`): `single`, one worker running every stage (one Kafka hop:",
        "`md.trades` into the worker), and `colocated` (the default; market and trading",
        "workers, a second hop on `orders.proposed`). Each fill's lineage is walked back to",
        "the trade that closed its bar; a stage is the difference of the `algostream-sent-ns`",
        "headers of its output and input, so a stage that reads a topic includes its Kafka",
        "hop. Every record is produced to its topic in both layouts. Producer settings:",
        "`acks=all`, idempotent ingest producer, `linger.ms=0` (latency first; batching",
        "happens anyway while a request is in flight), consumers `fetch.min.bytes=1`,",
        "`fetch.max.wait.ms=10` (see profiling row 6).",
        "",
    ]
    for layout in ("single", "colocated"):
        run = await pipeline.run_pipeline(
            bootstrap(), rate=rate, duration_s=duration_s, layout=layout
        )
        lines += [f"### Layout `{layout}`", "", *pipeline.report(run), ""]
    return lines


BACKTEST = "## Backtest speed"


def backtest_section() -> list[str]:
    """Bar and tick backtests beside backtesting.py (``python -m bench.run --backtest``)."""
    return [
        f"{BACKTEST} (bars beside backtesting.py, ticks through the book stage)",
        "",
        *bars.BLURB,
        "",
        *bars.main(),
        "",
    ]


async def soak(duration_s: float, rate: float, layout: str) -> list[str]:
    run = await pipeline.run_pipeline(
        bootstrap(), rate=rate, duration_s=duration_s, window_s=60.0, layout=layout
    )
    lines = [
        "## Soak",
        "",
        f"The whole pipeline for {duration_s / 60:.0f} minutes at {rate:.0f} depth events/s, "
        f"layout `{layout}`.",
        "",
        *pipeline.report(run),
        "",
        "Tick-to-trade per minute of the run (fills completed in that minute), and the book",
        "path's lag behind the feed (depth frame received -> its `book.top` sent) per minute:",
        "",
        "| minute | fills | p50 ms | p99 ms | p99.9 ms | book.top lag p50 ms | lag p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    lag = {round(start): b for start, b in run.book_windows}
    for start, lat in run.windows:
        b = lag.get(round(start))
        lag_cols = f"{b.p50_us / 1000:.1f} | {b.p99_us / 1000:.1f}" if b else "- | -"
        lines.append(
            f"| {start / 60:.0f} | {lat.n} | {lat.p50_us / 1000:.1f} | "
            f"{lat.p99_us / 1000:.1f} | {lat.p999_us / 1000:.1f} | {lag_cols} |"
        )
    if run.samples:
        lines += ["", "Memory (RSS MB) per process, every minute:", ""]
        names = list(run.samples[-1].rss_mb)
        lines += ["| minute | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
        for s in run.samples[::60]:
            row = " | ".join(f"{s.rss_mb.get(n, 0):.0f}" for n in names)
            lines.append(f"| {s.t_s / 60:.0f} | {row} |")
    return [*lines, ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--soak", action="store_true", help="run the soak instead")
    ap.add_argument("--duration", type=float, default=None, help="seconds of measurement")
    ap.add_argument("--rate", type=float, default=300.0, help="sim depth events per second")
    ap.add_argument("--layout", default="single", help="workers.layout of the soak")
    ap.add_argument("--backtest", action="store_true", help="only the backtest speed section")
    args = ap.parse_args()
    old = OUT.read_text() if OUT.exists() else ""
    existing = sections(old)
    if args.backtest:
        prefix = old.split("\n## ", 1)[0].rstrip().splitlines() if existing else header()
        others = [b for h, b in existing.items() if not h.startswith(BACKTEST)]
        text = "\n".join([*prefix, "", *others, *backtest_section()])
    elif args.soak:
        body = asyncio.run(soak(args.duration or 600.0, args.rate, args.layout))
        prefix = old.split("\n## ", 1)[0].rstrip().splitlines() if existing else header()
        others = [b for h, b in existing.items() if not h.startswith("## Soak")]
        text = "\n".join([*prefix, "", *others, *body])
    else:
        body = asyncio.run(measure(args.duration or 120.0, args.rate))
        text = "\n".join([*header(), *body, *kept(existing)])
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
