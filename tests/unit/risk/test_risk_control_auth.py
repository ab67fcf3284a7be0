"""Signed control commands: the gate accepts the operator's, refuses the rest."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from algostream.config import ConfigError, load_settings
from algostream.model import ControlAction, ControlCommand, RiskEventKind, TradingState
from algostream.risk.control_auth import (
    FORGED,
    NO_KEY,
    REPLAYED,
    STALE,
    UNSIGNED,
    ControlVerifier,
    refusal_event,
    sign,
    signing_bytes,
)
from algostream.risk.errors import ControlAuthError

KEY = b"operator-key-0123456789abcdef-0123456789"
SECOND = 1_000_000_000
NOW = 1_700_000_000 * SECOND
WINDOW = 30 * SECOND


def command(action: ControlAction = ControlAction.HALT, actor: str = "alice") -> ControlCommand:
    return ControlCommand(
        instrument="ALL:*",
        ts_event=NOW,
        ts_init=NOW,
        record_id=f"ctl-{action.value}",
        lineage_id="operator",
        action=action,
        actor=actor,
        reason="drill",
    )


def refused(
    cmd: ControlCommand, *, now: int = NOW, offset: int = 7, first: int | None = None
) -> str:
    try:
        ControlVerifier(KEY, WINDOW).check(cmd, now, offset=offset, first_offset=first)
    except ControlAuthError as exc:
        return exc.kind
    return ""


def test_signature_is_hmac_sha256_of_the_signing_bytes_as_a_reference_computes_it() -> None:
    signed = sign(command(), KEY, nonce="n-1")
    reference = crypto_hmac.HMAC(KEY, hashes.SHA256())
    reference.update(signing_bytes(signed))
    assert signed.signature == reference.finalize().hex()
    assert signed.nonce == "n-1"
    assert sign(command(), KEY).nonce != sign(command(), KEY).nonce  # fresh random nonces


def test_a_signed_fresh_command_is_accepted() -> None:
    assert refused(sign(command(), KEY)) == ""
    # clocks differ: a command from a little in the future is fine too
    assert refused(sign(command(), KEY), now=NOW - WINDOW) == ""


def test_unsigned_commands_are_refused() -> None:
    assert refused(command()) == UNSIGNED
    signed = sign(command(), KEY)
    assert refused(signed.model_copy(update={"signature": None})) == UNSIGNED
    assert refused(signed.model_copy(update={"nonce": None})) == UNSIGNED


@pytest.mark.parametrize(
    "change",
    [
        {"actor": "mallory"},
        {"action": ControlAction.RESUME},
        {"instrument": "BINANCE:BTCUSDT"},
        {"reason": "other"},
        {"ts_init": NOW + 1},
        {"record_id": "ctl-other"},
        {"nonce": "another"},
    ],
)
def test_any_changed_field_breaks_the_signature(change: dict[str, object]) -> None:
    signed = sign(command(), KEY)
    assert refused(signed.model_copy(update=change)) == FORGED


def test_a_command_signed_with_another_key_is_forged() -> None:
    assert refused(sign(command(), b"x" * 40)) == FORGED


def test_old_or_far_future_commands_are_stale() -> None:
    signed = sign(command(), KEY)
    assert refused(signed, now=NOW + WINDOW + 1) == STALE
    assert refused(signed, now=NOW - WINDOW - 1) == STALE


def test_a_copy_at_another_offset_is_a_replay_and_a_redelivery_is_not() -> None:
    signed = sign(command(), KEY)
    assert refused(signed, offset=9, first=7) == REPLAYED
    assert refused(signed, offset=7, first=7) == ""
    # the redelivered record takes effect again even long after: a HALT is not lost
    assert refused(signed, now=NOW + 100 * WINDOW, offset=7, first=7) == ""


def test_a_gate_without_a_key_refuses_every_command() -> None:
    with pytest.raises(ControlAuthError) as err:
        ControlVerifier(None, WINDOW).check(sign(command(), KEY), NOW, offset=0, first_offset=None)
    assert err.value.kind == NO_KEY and "ALGOSTREAM_CONTROL_KEY" in str(err.value)
    assert "***" in repr(ControlVerifier(KEY, WINDOW)) and KEY.decode() not in repr(
        ControlVerifier(KEY, WINDOW)
    )


def test_refusal_event_names_the_command_and_why() -> None:
    cmd = command(ControlAction.RESUME, actor="mallory")
    exc = ControlAuthError(FORGED, "bad signature")
    ev = refusal_event(
        cmd, exc, account="paper", state=TradingState.HALTED, source="control/0/12", now_ns=NOW
    )
    assert ev.kind is RiskEventKind.CONTROL_REFUSED
    assert (ev.state, ev.previous_state, ev.actor) == (TradingState.HALTED,) * 2 + ("mallory",)
    assert ev.detail == {
        "account": "paper",
        "action": "RESUME",
        "refused": FORGED,
        "command_id": "ctl-RESUME",
        "source": "control/0/12",
    }
    assert ev.lineage_id == cmd.record_id and ev.reason == "bad signature"


def test_control_key_from_env_or_owner_only_file_and_masked(tmp_path: Path) -> None:
    key = "ctl-key-" + "7" * 32
    s = load_settings(env={"ALGOSTREAM_CONTROL_KEY": key})
    assert s.risk.control_key is not None and s.risk.control_key.get_secret_value() == key
    assert key not in repr(s) + str(s.masked()) and s.masked()["risk"]["control_key"] == "***"
    path = tmp_path / "control.key"
    path.write_text(key + "\n")
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600") as err:
        load_settings(env={"ALGOSTREAM_CONTROL_KEY_FILE": str(path)})
    assert key not in str(err.value)
    os.chmod(path, 0o600)
    s = load_settings(env={"ALGOSTREAM_CONTROL_KEY_FILE": str(path)})
    assert s.risk.control_key is not None and s.risk.control_key.get_secret_value() == key


def test_a_short_control_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(env={"ALGOSTREAM_CONTROL_KEY": "short-key-5e1"})
    assert "control_key" in str(err.value) and "short-key-5e1" not in str(err.value)
    with pytest.raises(ConfigError, match="not here"):
        load_settings(env={"ALGOSTREAM__RISK__CONTROL_KEY": "x" * 40})
