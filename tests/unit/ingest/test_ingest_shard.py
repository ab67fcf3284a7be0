"""Sharding the symbol list: ``--shard K/N`` / ``market_data.shard``. The N shards take
every symbol exactly once, balanced, whatever the order the list is written in, and each
shard's ingestor subscribes to its own symbols only (its own connection)."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from algostream.config import ConfigError, load_settings
from algostream.ingest.run import make_adapter, shard_config
from algostream.ingest.shard import parse_shard, shard_symbols

SYMBOL = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=10)


@given(st.lists(SYMBOL, max_size=300), st.integers(1, 16), st.randoms())
def test_shards_cover_every_symbol_once_balanced_in_any_order(
    symbols: list[str], n: int, rnd: random.Random
) -> None:
    shards = [shard_symbols(symbols, f"{k}/{n}") for k in range(1, n + 1)]
    taken = [s for shard in shards for s in shard]
    assert sorted(taken) == sorted(set(symbols))  # no gap, no overlap
    sizes = [len(shard) for shard in shards]
    assert max(sizes) - min(sizes) <= 1
    shuffled = list(symbols)
    rnd.shuffle(shuffled)
    assert [shard_symbols(shuffled, f"{k}/{n}") for k in range(1, n + 1)] == shards


def test_a_shard_is_the_sorted_list_every_nth() -> None:
    symbols = ["solusdt", "BTCUSDT", "ETHUSDT", "ADAUSDT", "XRPUSDT", "BTCUSDT"]
    assert shard_symbols(symbols, "1/2") == ("ADAUSDT", "ETHUSDT", "XRPUSDT")
    assert shard_symbols(symbols, "2/2") == ("BTCUSDT", "SOLUSDT")
    assert shard_symbols(symbols, None) == ("ADAUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


@pytest.mark.parametrize("spec", ["0/4", "5/4", "2", "a/b", "2/0", "-1/3"])
def test_a_bad_shard_is_refused_naming_it(spec: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        parse_shard(spec)
    with pytest.raises(ConfigError, match=r"market_data\.shard"):
        load_settings(env={"ALGOSTREAM__MARKET_DATA__SHARD": spec})


def test_each_shard_subscribes_to_its_own_symbols() -> None:
    symbols = [f"S{i:03d}USDT" for i in range(10)]
    urls = []
    for k in (1, 2, 3):
        s = load_settings(
            env={
                "ALGOSTREAM__MARKET_DATA__SYMBOLS": json.dumps(symbols),
                "ALGOSTREAM__MARKET_DATA__SHARD": f"{k}/3",
            }
        )
        adapter = make_adapter(s)
        assert set(adapter.symbols) == set(shard_symbols(symbols, f"{k}/3"))
        assert len(adapter.symbols) in (3, 4)
        urls.append(adapter.url())
    streams = [u.split("streams=")[1].split("/") for u in urls]
    every = [name.split("@")[0] for names in streams for name in names if "@depth" in name]
    assert sorted(every) == sorted(s.lower() for s in symbols)


def test_a_shard_with_no_symbol_is_a_config_error() -> None:
    s = load_settings(
        env={
            "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["BTCUSDT"]',
            "ALGOSTREAM__MARKET_DATA__SHARD": "2/2",
        }
    )
    with pytest.raises(ConfigError, match="no symbol for this shard"):
        shard_config(s.market_data)


def test_the_ingest_command_takes_shard(monkeypatch: pytest.MonkeyPatch) -> None:
    import algostream.commands  # noqa: F401  (registers the commands)
    import algostream.ingest.run as run
    from algostream.cli import app

    seen = []
    monkeypatch.setattr(run, "run_ingest", lambda settings, port: seen.append(settings))
    result = CliRunner().invoke(app, ["ingest", "--shard", "2/4"])
    assert result.exit_code == 0, result.output
    assert seen[0].market_data.shard == "2/4"
    refused = CliRunner().invoke(app, ["ingest", "--shard", "5/4"])
    assert refused.exit_code == 2 and not seen[1:]
