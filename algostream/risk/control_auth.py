"""Signed operator commands: who may halt, reduce, resume or flatten trading.

A :class:`~algostream.model.records.ControlCommand` carries a random ``nonce`` and an
HMAC-SHA256 ``signature`` (hex) over every other field, made with the operator key
(``ALGOSTREAM_CONTROL_KEY`` or an owner-only ``ALGOSTREAM_CONTROL_KEY_FILE``; the CLI signs
with it). The risk gate accepts a command only if the signature matches, its ``ts_init``
is within ``risk.control_window_ms`` of the gate's clock and its nonce was not used
before (the gate remembers nonces for longer than the window, so a copied record is
refused twice over: replayed within the window, stale after it). A changed ``actor``,
``action`` or ``instrument`` changes the signed bytes: a forged copy is refused.

Pure logic: the clock and the memory of used nonces are passed in.

>>> from algostream.model.enums import ControlAction
>>> from algostream.model.records import ControlCommand
>>> key = b"k" * 32
>>> cmd = ControlCommand(instrument="ALL:*", ts_event=5, ts_init=5, record_id="c1",
...                      lineage_id="operator", action=ControlAction.HALT, actor="ops",
...                      reason="drill")
>>> signed = sign(cmd, key, nonce="n1")
>>> ControlVerifier(key, window_ns=10).check(signed, now_ns=6, offset=0, first_offset=None)
>>> forged = signed.model_copy(update={"actor": "mallory"})
>>> try:
...     ControlVerifier(key, window_ns=10).check(forged, now_ns=6, offset=1, first_offset=None)
... except ControlAuthError as exc:
...     print(exc.kind)
forged
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import orjson

from algostream.model.enums import RiskEventKind, TradingState
from algostream.model.ids import derive_id
from algostream.model.records import ControlCommand, RiskEvent
from algostream.risk.errors import ControlAuthError

#: refusal kinds (the ``kind`` of :class:`ControlAuthError`, a metric label)
UNSIGNED, FORGED, STALE, REPLAYED, NO_KEY = "unsigned", "forged", "stale", "replayed", "no_key"


def signing_bytes(cmd: ControlCommand) -> bytes:
    """What the signature covers: every field but the signature, in a fixed order (the
    ``strategy`` of a one-strategy command last, so older commands sign as before)."""
    fields: list[object] = [
        "algostream-control-v1",
        cmd.instrument,
        cmd.ts_event,
        cmd.ts_init,
        cmd.record_id,
        cmd.lineage_id,
        cmd.action.value,
        cmd.actor,
        cmd.reason,
        cmd.nonce,
    ]
    if cmd.strategy is not None:
        fields.append(cmd.strategy)
    return orjson.dumps(fields)


def signature(cmd: ControlCommand, key: bytes) -> str:
    """HMAC-SHA256 of :func:`signing_bytes`, hex."""
    return hmac.new(key, signing_bytes(cmd), hashlib.sha256).hexdigest()


def sign(cmd: ControlCommand, key: bytes, *, nonce: str | None = None) -> ControlCommand:
    """``cmd`` with a fresh random nonce (or ``nonce``) and its signature."""
    with_nonce = cmd.model_copy(update={"nonce": nonce or secrets.token_hex(16)})
    return with_nonce.model_copy(update={"signature": signature(with_nonce, key)})


class ControlVerifier:
    """The gate's check of a command: signed with the key, recent, not seen before."""

    def __init__(self, key: bytes | None, window_ns: int) -> None:
        self._key = key
        self.window_ns = window_ns

    def __repr__(self) -> str:  # never the key
        return f"ControlVerifier(key={'***' if self._key else None}, window_ns={self.window_ns})"

    def check(
        self, cmd: ControlCommand, now_ns: int, *, offset: int, first_offset: int | None
    ) -> None:
        """Return if ``cmd`` may take effect; else raise :class:`ControlAuthError`.

        ``offset``: where ``cmd`` was read on ``control``; ``first_offset``: where a command
        with its nonce was accepted before, if one was. The same offset again is the same
        record redelivered after a restart (it takes effect again, whatever its age: a
        HALT must not be lost to a crash); any other offset is a copy: a replay."""
        who = f"control command {cmd.record_id} ({cmd.action.value} by {cmd.actor!r})"
        if self._key is None:
            raise ControlAuthError(
                NO_KEY,
                f"{who}: this worker has no operator key (set ALGOSTREAM_CONTROL_KEY or "
                "ALGOSTREAM_CONTROL_KEY_FILE), so no command can be verified",
            )
        if not cmd.signature or not cmd.nonce:
            raise ControlAuthError(UNSIGNED, f"{who}: unsigned (no nonce or signature)")
        if not hmac.compare_digest(cmd.signature, signature(cmd, self._key)):
            raise ControlAuthError(
                FORGED, f"{who}: the signature does not match (forged or signed with another key)"
            )
        if first_offset == offset:
            return  # redelivered: accepted when it was first read
        if first_offset is not None:
            raise ControlAuthError(
                REPLAYED,
                f"{who}: nonce {cmd.nonce} was accepted before at offset {first_offset} "
                "(a replayed copy)",
            )
        skew_ms = (now_ns - cmd.ts_init) // 1_000_000
        if abs(now_ns - cmd.ts_init) > self.window_ns:
            raise ControlAuthError(
                STALE,
                f"{who}: ts_init is {skew_ms} ms from the gate's clock, outside the "
                f"window of {self.window_ns // 1_000_000} ms (risk.control_window_ms)",
            )


def refusal_event(
    cmd: ControlCommand,
    error: ControlAuthError,
    *,
    account: str,
    state: TradingState,
    source: str,
    now_ns: int,
) -> RiskEvent:
    """The ``risk.events`` audit record of a refused command: who it claimed to be, what
    it asked for, why it was refused and where it was read (``topic/partition/offset``).
    ``state`` is the unchanged trading state of what it targeted."""
    return RiskEvent(
        instrument=cmd.instrument,
        ts_event=cmd.ts_event,
        ts_init=now_ns,
        record_id=derive_id("control-refused", source, cmd.record_id),
        lineage_id=cmd.record_id,
        kind=RiskEventKind.CONTROL_REFUSED,
        state=state,
        previous_state=state,
        actor=cmd.actor,
        reason=str(error),
        detail={
            "account": account,
            "action": cmd.action.value,
            "refused": error.kind,
            "command_id": cmd.record_id,
            "source": source,
        },
    )
