"""Tick backtest A/B: two source trees in turn, CPU seconds (``python -m bench.backtest_ab``).

``python -m bench.backtest_ab OLD NEW [--turns 3]``: OLD and NEW are directories holding
an ``algostream`` package (a worktree, or ``git archive <commit> algostream | tar -x``).
Each turn runs OLD then NEW in a fresh process (``PYTHONPATH`` = that tree): the seeded
synthetic market's md.book + md.trades records through ``BacktestEngine``, best of 3 in
CPU seconds (``time.process_time``), twice: as it is, and with the book stage replayed
(``BookProcessor.on_update`` answers with the outputs it gave for each update in an
earlier pass, at the cost of a list look-up, the compiled book path kept out of the run:
the rest of the run, with the book stage's own cost taken out), and from the records'
encoded bytes as that tree's replay gives them to the engine (md.book as
``EncodedBook`` where the tree has it, else every record decoded first). Then, on NEW,
an ablation: the run without the risk marks, and the book stage alone (as the run takes
it: the compiled path from the records where the tree has ``FastBooks.handle_update``,
else ``BookProcessor.on_update``), to say what bounds it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

CHILD = r"""
import sys, time
from algostream.backtest.engine import BacktestEngine
from algostream.backtest.synthetic import synthetic_frames
from algostream.config import Settings
from algostream.marketdata import native
from algostream.model.records import BookUpdate

raw = BacktestEngine(Settings()).run(synthetic_frames(("BTCUSDT", "ETHUSDT"), 7, 20000))
records = [r for t, r in raw.outputs if t in ("md.book", "md.trades")]
del raw

def best(fn, runs=3):
    out = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        out.append(time.process_time() - start)
    return min(out)

def full():
    BacktestEngine(Settings()).run(records)

def no_risk_marks():
    engine = BacktestEngine(Settings())
    tops = engine.risk._tops
    engine.risk.on_book_top = lambda top, now=None: tops.__setitem__(top.instrument, top) or []
    engine.run(records)

def book_stage():
    engine = BacktestEngine(Settings())
    fast = native.attach(engine.book)
    pending = {}
    if fast is None or not hasattr(fast, "handle_update"):  # (a tree before it)
        engine.book.fast = None
        fast = None
    for update in records:
        if isinstance(update, BookUpdate):
            if fast is None or fast.handle_update(update, pending) is None:
                engine.book.on_update(update, update.ts_init)

pre = BacktestEngine(Settings())
replies = [pre.book.on_update(u, u.ts_init) for u in records if isinstance(u, BookUpdate)]

def book_replayed():
    engine = BacktestEngine(Settings())
    answers = iter(replies)
    engine.book.on_update = lambda update, now: next(answers)
    attach, native.attach = native.attach, lambda *args, **kw: None  # (the replay only)
    try:
        engine.run(records)
    finally:
        native.attach = attach

encoded = [(type(r), r.ts_event, r.encode()) for r in records]
try:  # md.book as bytes, through the compiled book path (a replay's input since issue 21)
    from algostream.backtest.engine import EncodedBook
except ImportError:  # an older tree: a replay decoded every record first
    EncodedBook = None

def from_bytes():
    BacktestEngine(Settings()).run(
        EncodedBook(ts, payload) if EncodedBook and cls is BookUpdate else cls.decode(payload)
        for cls, ts, payload in encoded
    )

print(len(records), best(full), best(book_replayed), best(from_bytes))
if sys.argv[1:] == ["ablate"]:
    print(best(no_risk_marks, 5), best(book_stage, 5), best(full, 5))
"""


def run(tree: str, *args: str) -> list[str]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd="/",
    )
    return done.stdout.split()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("--turns", type=int, default=3)
    args = ap.parse_args()
    times: dict[str, list[float]] = {
        "old": [],
        "new": [],
        "old, book replayed": [],
        "new, book replayed": [],
        "old, from encoded bytes": [],
        "new, from encoded bytes": [],
    }
    events = 0
    for _ in range(args.turns):
        for name in ("old", "new"):
            n, took, replayed, encoded = run(getattr(args, name))
            events = int(n)
            times[name].append(float(took))
            times[f"{name}, book replayed"].append(float(replayed))
            times[f"{name}, from encoded bytes"].append(float(encoded))
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print("| code | " + " | ".join(f"turn {i + 1}" for i in range(args.turns)) + " | best |")
    print("|---" * (args.turns + 2) + "|")
    for name, secs in times.items():
        cells = " | ".join(f"{s:.3f} s" for s in secs)
        best = min(secs)
        print(
            f"| {name} | {cells} | {best:.3f} s = {events / best:,.0f} events/s, "
            f"{1e6 * best / events:.1f} µs an event |"
        )
    _, _, _, _, no_risk, book, full = run(args.new, "ablate")
    full_s, no_risk_s, book_s = float(full), float(no_risk), float(book)
    print(
        f"new, ablation (best of 5): full {full_s:.3f} s; without the risk marks "
        f"{no_risk_s:.3f} s (marks {100 * (full_s - no_risk_s) / full_s:.0f} %); "
        f"book stage alone {book_s:.3f} s ({100 * book_s / full_s:.0f} %)"
    )


if __name__ == "__main__":
    main()
