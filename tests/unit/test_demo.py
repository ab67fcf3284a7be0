"""The demo's operator key: made once, owner-only, usable by the CLI and the workers."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from algostream.config import load_settings
from algostream.demo import operator_key_env


def test_demo_makes_an_owner_only_key_the_settings_accept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ALGOSTREAM_CONTROL_KEY", raising=False)
    monkeypatch.delenv("ALGOSTREAM_CONTROL_KEY_FILE", raising=False)
    env = operator_key_env(tmp_path / "data")
    path = Path(env["ALGOSTREAM_CONTROL_KEY_FILE"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text()
    assert len(key) == 64 and int(key, 16) >= 0
    settings = load_settings(env=env)
    assert settings.risk.control_key is not None
    assert settings.risk.control_key.get_secret_value() == key
    assert operator_key_env(tmp_path / "data") == env  # the same key on the next demo
    assert path.read_text() == key


def test_a_key_from_the_environment_is_left_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALGOSTREAM_CONTROL_KEY", "k" * 40)
    assert operator_key_env(tmp_path) == {}
    assert not (tmp_path / "control.key").exists()
