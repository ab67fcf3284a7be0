"""``algostream history import --to-topics`` on the real broker: Kafka timestamps are event
time, so ``backtest --from/--to`` finds exactly the imported window; a topic whose
retention would delete the history at once is refused; bad rows go to ``dlq``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from algostream.backtest.source import read_range
from algostream.config import Settings
from algostream.history import read_trades
from algostream.kafka.catalog import Catalog, load_catalog
from algostream.kafka.provision import apply_catalog, delete_run_topics, describe
from algostream.model.records import DeadLetter, TradeTick

DATA = Path(__file__).resolve().parents[2] / "data" / "history"
AGG = DATA / "BTCUSDT-aggTrades-2024-01-01.csv"
REPO = Path(__file__).resolve().parents[3]

pytestmark = pytest.mark.integration


@pytest.fixture()
async def settings(kafka_settings: Settings) -> AsyncIterator[Settings]:
    yield kafka_settings
    await delete_run_topics(kafka_settings.kafka)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algostream", *args],
        env=os.environ | env | {"PYTHONPATH": str(REPO), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
    )


async def test_imported_trades_replay_by_event_time(
    settings: Settings, kafka_env: dict[str, str], tmp_path: Path
) -> None:
    done = cli(kafka_env, "history", "import", str(AGG), "--format", "binance-spot-aggtrades",
               "--to-topics")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "400" in done.stdout and "2024-01-01 00:00:00.427 UTC" in done.stdout

    ticks = list(read_trades(AGG, "binance-spot-aggtrades"))
    lo, hi = ticks[100].ts_event, ticks[299].ts_event
    window = [t for t in ticks if lo <= t.ts_event <= hi]
    got = await read_range(settings.kafka, ["md.trades"], lo, hi)
    assert [TradeTick.decode(r.value) for r in got] == window
    assert all(r.timestamp_ms == r.ts_event // 1_000_000 for r in got)
    full = settings.kafka.topic_prefix + "md.trades"
    assert (await describe(settings.kafka, [full]))[full].configs["retention.ms"] == "-1"

    out = tmp_path / "report"
    run = cli(kafka_env, "backtest", "--from", str(lo), "--to", str(hi), "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"'md.trades': {len(window)}" in run.stdout


async def test_trades_with_book_tickers_backtest_to_fills(
    settings: Settings, kafka_env: dict[str, str], tmp_path: Path
) -> None:
    """A USD-M trade dump and its bookTicker dump: the tops let the gate approve and the
    paper broker fill, so the report has trades."""
    for name, fmt in (
        ("BTCUSDT-bookTicker-2024-02-01.csv", "binance-um-bookticker"),
        ("BTCUSDT-aggTrades-2024-02-01.csv", "binance-um-aggtrades"),
    ):
        done = cli(kafka_env, "history", "import", str(DATA / name), "--format", fmt, "--to-topics")
        assert done.returncode == 0, done.stdout + done.stderr
    out = tmp_path / "report"
    run = cli(kafka_env, "backtest", "--from", "2024-02-01T00:00:00Z", "--to",
              "2024-02-01T00:03:00Z", "--out", str(out))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "'md.book': 546" in run.stdout and "'md.trades': 300" in run.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fill_count"] > 0 and (out / "report.html").is_file()


async def test_a_topic_that_would_delete_the_history_is_refused(
    settings: Settings, kafka_env: dict[str, str]
) -> None:
    spec = load_catalog()["md.trades"]  # 30 days of retention: 2024 is long gone
    await apply_catalog(Catalog({"md.trades": spec}), settings.kafka)
    done = cli(kafka_env, "history", "import", str(AGG), "--format", "binance-spot-aggtrades",
               "--to-topics")  # fmt: skip
    assert done.returncode == 1
    assert "would delete it" in done.stdout and "--prefix" in done.stdout
    assert await read_range(settings.kafka, ["md.trades"]) == []


async def test_keep_going_sends_bad_rows_to_the_dlq(
    settings: Settings, kafka_env: dict[str, str], tmp_path: Path
) -> None:
    lines = AGG.read_text().splitlines()
    lines[41] = lines[41].replace(",", ",oops,", 1)
    bad = tmp_path / AGG.name
    bad.write_text("\n".join(lines) + "\n")
    done = cli(kafka_env, "history", "import", str(bad), "--format", "binance-spot-aggtrades",
               "--to-topics", "--keep-going")  # fmt: skip
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"{bad}:42" in done.stdout
    assert len(await read_range(settings.kafka, ["md.trades"])) == 399
    dlq = [DeadLetter.decode(r.value) for r in await read_range(settings.kafka, ["dlq"])]
    assert [(d.offset, d.source_topic) for d in dlq] == [(42, f"file:{bad}")]
