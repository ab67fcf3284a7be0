from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from algostream.config import ConfigError, Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
SEED_KEYS = {
    "market_data": {"exchange", "symbols", "websocket_url", "reconnect_delay_ms"},
    "risk": {
        "max_position_size",
        "max_notional_exposure",
        "max_open_positions",
        "stop_loss_percent",
        "trailing_stop_percent",
        "enable_circuit_breaker",
        "max_loss_threshold",
    },
    "execution": {
        "exchange_api_url",
        "rate_limit_per_second",
        "retry_attempts",
        "retry_delay_ms",
        "paper_trading",
    },
    "signal": {"model_path", "features", "update_interval_ms"},
}


def test_system_json_has_every_seed_section_and_key() -> None:
    data = json.loads((REPO / "config" / "system.json").read_text())
    for section, keys in SEED_KEYS.items():
        assert keys <= set(data[section]), f"{section} misses {keys - set(data[section])}"
    assert {"kafka", "observability"} <= set(data)


def test_repo_config_loads_and_matches_the_seed_defaults() -> None:
    s = load_settings(REPO / "config" / "system.json", env={})
    assert s.risk.max_position_size == Decimal("10.0")
    assert s.risk.max_notional_exposure == Decimal("100000.0")
    assert isinstance(s.risk.max_loss_threshold, Decimal)
    assert s.execution.paper_trading is True


def test_env_overrides_are_exact_decimals() -> None:
    s = load_settings(
        env={
            "ALGOSTREAM__RISK__MAX_POSITION_SIZE": "0.1",
            "ALGOSTREAM__MARKET_DATA__SYMBOLS": '["SOLUSDT"]',
        }
    )
    assert s.risk.max_position_size == Decimal("0.1")
    assert s.market_data.symbols == ("SOLUSDT",)


def test_unknown_key_is_refused_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"risk": {"max_positon_size": 3}}))
    with pytest.raises(ConfigError, match=r"risk\.max_positon_size"):
        load_settings(cfg, env={})


def test_bad_value_names_key_and_value() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={"ALGOSTREAM__RISK__MAX_OPEN_POSITIONS": "many"})
    assert "risk.max_open_positions" in str(err.value) and "'many'" in str(err.value)


def test_secret_in_file_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"execution": {"api_secret": "hunter2"}}))
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, env={})
    assert "hunter2" not in str(err.value) and "api_secret" in str(err.value)


def test_secrets_come_from_env_and_are_masked_everywhere() -> None:
    s = load_settings(env={"ALGOSTREAM_API_KEY": "key-123456", "ALGOSTREAM_API_SECRET": "sec-987"})
    assert s.execution.api_secret is not None
    assert s.execution.api_secret.get_secret_value() == "sec-987"
    for text in (repr(s), str(s), json.dumps(s.masked()), repr(s.execution)):
        assert "sec-987" not in text and "key-123456" not in text
    assert s.masked()["execution"]["api_key"] == "***"


def test_secret_file_must_be_owner_only(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("from-file\n")
    os.chmod(secret, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_settings(env={"ALGOSTREAM_API_SECRET_FILE": str(secret)})
    os.chmod(secret, 0o600)
    s = load_settings(env={"ALGOSTREAM_API_SECRET_FILE": str(secret)})
    assert s.execution.api_secret is not None
    assert s.execution.api_secret.get_secret_value() == "from-file"


def test_secret_cannot_be_set_through_the_override_path() -> None:
    with pytest.raises(ConfigError, match="ALGOSTREAM_API_KEY"):
        load_settings(env={"ALGOSTREAM__EXECUTION__API_KEY": "x"})


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(Exception, match="frozen"):
        s.risk.max_open_positions = 9  # type: ignore[misc]


def test_bar_intervals_take_5m_to_1d_and_refuse_an_unknown_one() -> None:
    s = load_settings(
        env={"ALGOSTREAM__MARKET_DATA__BAR_INTERVALS": '["1s","5m","15m","1h","4h","1d"]'}
    )
    assert s.market_data.bar_intervals == ("1s", "5m", "15m", "1h", "4h", "1d")
    with pytest.raises(ConfigError, match=r"bar_intervals.*7m"):
        load_settings(env={"ALGOSTREAM__MARKET_DATA__BAR_INTERVALS": '["7m"]'})


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("LEVERAGE", "200", r"risk\.leverage' = 200"),
        ("LEVERAGE", "0", r"risk\.leverage' = 0"),
        ("MARGIN_MODE", '"BOTH"', r"risk\.margin_mode' = 'BOTH'"),
        ("MIN_LIQUIDATION_DISTANCE_PERCENT", "0", r"risk\.min_liquidation_distance_percent"),
    ],
)
def test_futures_settings_are_checked_at_start_naming_key_and_value(
    key: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(env={f"ALGOSTREAM__RISK__{key}": value})


def test_futures_settings_defaults_and_overrides() -> None:
    s = load_settings(
        env={"ALGOSTREAM__RISK__LEVERAGE": "125", "ALGOSTREAM__RISK__MARGIN_MODE": "ISOLATED"}
    )
    assert (s.risk.leverage, s.risk.margin_mode) == (125, "ISOLATED")
    assert load_settings(env={}).risk.margin_mode == "CROSS"
