"""``algostream history import`` without the topics: check, summarise, name bad rows."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

import algostream.history.cli  # noqa: F401  (registers the command)
from algostream.cli import app

DATA = Path(__file__).resolve().parents[2] / "data" / "history"


def test_import_summarises_rows_and_time_range() -> None:
    result = CliRunner().invoke(
        app, ["history", "import", str(DATA / "ETHUSDT-5m-2024-03-01.csv"),
              "--format", "binance-um-klines"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "rows read │ 24" in out and "rejected │ 0" in out
    assert (
        "first event (a bar: its close) │ 2024-03-01 00:05:00.000 UTC" in out
    )  # a bar's time is its close
    assert "last event │ 2024-03-01 02:00:00.000 UTC" in out


def test_a_wrong_format_flag_is_a_clear_error() -> None:
    runner = CliRunner()
    result = runner.invoke(
        app, ["history", "import", str(DATA / "GOOG-daily.csv"), "--format", "binance-um-trades"]
    )
    assert result.exit_code == 1
    assert "GOOG-daily.csv:1: header" in " ".join(result.output.split()).replace("\n", "")
    result = runner.invoke(
        app, ["history", "import", str(DATA / "GOOG-daily.csv"), "--format", "csv"]
    )
    assert result.exit_code == 2 and "'csv' is not one of" in result.output


def test_several_files_are_imported_in_turn_each_summarised() -> None:
    files = [str(DATA / "BTCUSDT-1m-2024-01-01.csv"), str(DATA / "BTCUSDT-1h-2025-01-01.csv")]
    result = CliRunner().invoke(
        app, ["history", "import", *files, "--format", "binance-spot-klines"]
    )
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "rows read │ 30" in out and "rows read │ 24" in out
