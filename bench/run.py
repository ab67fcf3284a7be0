"""``make bench``: run the benchmarks and rewrite bench/BENCHMARKS.md with the results."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path

from bench import stages
from bench.common import HEADER

OUT = Path(__file__).with_name("BENCHMARKS.md")


def main() -> None:
    rows = [lat.row(target) for lat, target in stages.main()]
    text = "\n".join([
        "# Benchmarks",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}.",
        "Reproduce with `make bench`.",
        "",
        "## Per-stage latency (pure processors, in-process) vs the seed's targets",
        "",
        HEADER,
        *rows,
        "",
    ])
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
