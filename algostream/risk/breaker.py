"""Circuit breaker and kill switch: the trading state of every account and instrument.

Three layers decide the state of ``(account, instrument)``; the most restrictive wins
(HALTED > REDUCING > ACTIVE):

* **account** layer - operator commands on ``ALL:*`` and the loss breaker;
* **instrument** layer - operator commands naming one instrument (per account);
* **reconciliation** layer - the execution stage found the venue's positions differ
  from the ledger's above ``risk.position_mismatch_tolerance`` (``position_mismatch:
  halt``): the account is HALTED, naming the mismatch, until the operator's RESUME or a
  reconciliation that no longer finds it (:meth:`CircuitBreaker.on_reconciliation`);
* **integrity** layer - a GAP / STALE / CROSSED / DISCONNECTED book puts the instrument in
  REDUCING for every account until a RESYNCED event (operator RESUME does not clear it:
  the book is still wrong).

The loss breaker (when ``enable_circuit_breaker``) trips the account to HALTED when
``realised + unrealised < -max_loss_threshold`` or when the drawdown from peak equity
exceeds ``max_drawdown_percent``. It is level-triggered: an operator RESUME while the
condition still holds is followed by a new trip on the next check, so trading resumes only
once the loss is back inside the limit or the limit is raised.

Operator commands apply to every account the processor knows (``ControlCommand`` has no
account). Each command produces one ``CONTROL`` event per account even when nothing
changed, as an audit trail; every other event is a real state change.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from algostream.config import RiskConfig
from algostream.model.enums import ControlAction, IntegrityKind, RiskEventKind, TradingState
from algostream.model.ids import derive_id
from algostream.model.records import BookIntegrity, ControlCommand, Record, RiskEvent
from algostream.risk.errors import StateRestoreError
from algostream.risk.ledger import AVG_CONTEXT, ZERO, AccountLedger

_HUNDRED = Decimal(100)

ALL_INSTRUMENTS = "ALL:*"
BREAKER_ACTOR = "risk.breaker"
INTEGRITY_ACTOR = "risk.integrity"
#: the actor of the execution stage's position reconciliation records on ``risk.events``
RECONCILIATION_ACTOR = "reconciliation"
_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}
_ACTION_STATE = {
    ControlAction.HALT: TradingState.HALTED,
    ControlAction.REDUCE: TradingState.REDUCING,
    ControlAction.RESUME: TradingState.ACTIVE,
    ControlAction.FLATTEN: TradingState.REDUCING,
}


def most_restrictive(*states: TradingState) -> TradingState:
    """The most restrictive of ``states`` (ACTIVE when none)."""
    return max(states, key=_SEVERITY.__getitem__, default=TradingState.ACTIVE)


@dataclass(frozen=True, slots=True)
class StateChange:
    """One change of one layer; becomes a ``RiskEvent``."""

    layer: str
    account: str | None
    scope: str
    previous: TradingState
    state: TradingState
    kind: RiskEventKind
    actor: str
    reason: str
    detail: dict[str, str] = field(default_factory=dict)

    def to_event(self, cause: Record, now_ns: int) -> RiskEvent:
        """The ``RiskEvent`` of this change, caused by ``cause``."""
        detail = {"layer": self.layer, **self.detail}
        if self.account is not None:
            detail["account"] = self.account
        return RiskEvent(
            instrument=self.scope,
            ts_event=cause.ts_event,
            ts_init=now_ns,
            record_id=derive_id(
                "risk-event", cause.record_id, self.layer, self.account, self.scope, self.kind.value
            ),
            lineage_id=cause.record_id,
            kind=self.kind,
            state=self.state,
            previous_state=self.previous,
            actor=self.actor,
            reason=self.reason,
            detail=detail,
        )


class CircuitBreaker:
    """Trading state per account with per-instrument overrides and book integrity.

    >>> from algostream.config import RiskConfig
    >>> b = CircuitBreaker(RiskConfig())
    >>> b.state("paper", "BINANCE:BTCUSDT")
    <TradingState.ACTIVE: 'ACTIVE'>
    """

    def __init__(self, config: RiskConfig) -> None:
        self.config = config
        self._accounts: dict[str, TradingState] = {}
        self._instruments: dict[tuple[str, str], TradingState] = {}
        self._integrity: dict[str, IntegrityKind] = {}
        self._tripped: dict[str, str] = {}
        #: account -> the position mismatch that halts it (reconciliation layer)
        self._mismatch: dict[str, str] = {}
        #: account -> (its ledger, ledger.version, peak) when last checked and clear
        self._clear: dict[str, tuple[AccountLedger, int, Decimal]] = {}

    def state(self, account: str, instrument: str) -> TradingState:
        """Effective state of ``(account, instrument)``: the most restrictive layer."""
        acc = self._accounts.get(account)
        inst = self._instruments.get((account, instrument)) if self._instruments else None
        quiet = instrument not in self._integrity and account not in self._mismatch
        if acc is None and inst is None and quiet:
            return TradingState.ACTIVE  # (every top asks: no layer set is the usual case)
        broken = TradingState.REDUCING if instrument in self._integrity else TradingState.ACTIVE
        mismatch = TradingState.HALTED if account in self._mismatch else TradingState.ACTIVE
        return most_restrictive(
            mismatch, acc or TradingState.ACTIVE, inst or TradingState.ACTIVE, broken
        )

    def any_layer(self) -> bool:
        """Some layer is set (an account's or an instrument's state, a broken book, a
        position mismatch): else every state is ACTIVE, the gate's quiet marks' case."""
        return bool(self._accounts or self._instruments or self._integrity or self._mismatch)

    def account_state(self, account: str) -> TradingState:
        """State of the account layer."""
        return self._accounts.get(account, TradingState.ACTIVE)

    def tripped_reason(self, account: str) -> str | None:
        """Why the loss breaker tripped the account, or ``None`` when it has not."""
        return self._tripped.get(account)

    def mismatch_reason(self, account: str) -> str | None:
        """The position mismatch that halts the account, or ``None``."""
        return self._mismatch.get(account)

    # ------------------------------------------------------------------ reconciliation

    def on_reconciliation(
        self, account: str, mismatch: str | None, actor: str = RECONCILIATION_ACTOR
    ) -> list[StateChange]:
        """A position reconciliation's verdict on ``account``: ``mismatch`` (why) halts
        it, ``None`` (no mismatch found) lifts a mismatch halt. The change is returned
        only when the account was not halted by a mismatch yet (a halt's record is the
        execution stage's own) or when one is lifted."""
        previous = self._mismatch.get(account)
        if mismatch is not None:
            self._mismatch[account] = mismatch
            return []
        if previous is None:
            return []
        del self._mismatch[account]
        return [self._mismatch_cleared(account, previous, actor, "no position mismatch found")]

    def _mismatch_cleared(self, account: str, was: str, actor: str, why: str) -> StateChange:
        return StateChange(
            "reconciliation",
            account,
            ALL_INSTRUMENTS,
            TradingState.HALTED,
            TradingState.ACTIVE,
            RiskEventKind.STATE_CHANGED,
            actor,
            why,
            {"halted_by": was[:2000]},
        )

    # ------------------------------------------------------------------ loss breaker

    def check_account(self, ledger: AccountLedger) -> list[StateChange]:
        """Trip ``ledger``'s account to HALTED when a loss limit is broken."""
        account = ledger.account
        if not self.config.enable_circuit_breaker:
            return []
        if self._accounts.get(account) is TradingState.HALTED:
            return []
        if self.found_clear(ledger):
            return []  # equity and peak as when last found clear (most tops: the same mark)
        found = self._breach(ledger)
        if found is None:
            self._clear[account] = (ledger, ledger.version, ledger.peak_equity)
            return []
        reason, detail = found
        previous = self.account_state(account)
        self._accounts[account] = TradingState.HALTED
        self._tripped[account] = reason
        return [
            StateChange(
                "account",
                account,
                ALL_INSTRUMENTS,
                previous,
                TradingState.HALTED,
                RiskEventKind.BREAKER_TRIPPED,
                BREAKER_ACTOR,
                reason,
                detail,
            )
        ]

    def found_clear(self, ledger: AccountLedger) -> bool:
        """Whether ``ledger``'s account was found clear at its present version and peak
        (nothing a loss limit looks at has moved since)."""
        clear = self._clear.get(ledger.account)
        return (
            clear is not None
            and clear[0] is ledger
            and clear[1] == ledger.version
            and clear[2] is ledger.peak_equity
        )

    def is_clear(self, ledger: AccountLedger) -> bool:
        """True when :meth:`check_account` would return nothing now (no loss limit broken,
        the breaker off, or the account halted already); the account found clear is
        remembered as ``check_account`` remembers it. Nothing is tripped here: a breach
        is left to ``check_account`` (on every top with a position whose mark moved)."""
        account = ledger.account
        if self.found_clear(ledger):
            return True  # (most tops: found clear at this version and peak)
        if not self.config.enable_circuit_breaker:
            return True
        if self._accounts.get(account) is TradingState.HALTED:
            return True
        if self._breach(ledger) is not None:
            return False
        self._clear[account] = (ledger, ledger.version, ledger.peak_equity)
        return True

    def _breach(self, ledger: AccountLedger) -> tuple[str, dict[str, str]] | None:
        # on every top: decided on the ledger's kept values (O(1)); the same values as
        # the full sums, so the same decision; a breach's detail is written from the sums
        realized, unrealized = ledger.realized_pnl, ledger.unrealized_value
        limit, max_dd = self.config.max_loss_threshold, self.config.max_drawdown_percent
        if realized + unrealized >= -limit:
            peak = ledger.peak_equity
            amount = peak - ledger.equity_value
            if amount <= 0 and max_dd >= 0:
                return None  # no drawdown: cannot exceed the limit
            if amount < 0:
                amount = ZERO
            drawdown = AVG_CONTEXT.divide(amount * _HUNDRED, peak) if peak > 0 else ZERO
            if not drawdown > max_dd:
                return None
        return self._breach_detail(ledger)

    def _breach_detail(self, ledger: AccountLedger) -> tuple[str, dict[str, str]] | None:
        realized, unrealized = ledger.realized_pnl, ledger.unrealized_pnl
        pnl = realized + unrealized
        limit = self.config.max_loss_threshold
        if pnl < -limit:
            return "MAX_LOSS", {"limit": str(limit), "value": str(-pnl)}
        # ledger.drawdown_percent, with the sums above taken once (this runs on every top)
        equity = ledger.starting_equity + realized + unrealized - ledger.fees
        peak, max_dd = ledger.peak_equity, self.config.max_drawdown_percent
        amount = max(peak - equity, ZERO)
        if not amount and max_dd >= 0:
            return None  # no drawdown: cannot exceed the limit
        drawdown = AVG_CONTEXT.divide(amount * _HUNDRED, peak) if peak > 0 else ZERO
        if drawdown > max_dd:
            return "MAX_DRAWDOWN", {
                "limit": str(max_dd),
                "value": str(drawdown),
                "peak_equity": str(peak),
                "equity": str(equity),
            }
        return None

    # ------------------------------------------------------------------ book integrity

    def on_integrity(self, event: BookIntegrity) -> list[StateChange]:
        """A broken book moves its instrument to REDUCING; RESYNCED moves it back."""
        inst = event.instrument
        broken = inst in self._integrity
        if event.kind is IntegrityKind.RESYNCED:
            if not broken:
                return []
            del self._integrity[inst]
            previous, state = TradingState.REDUCING, TradingState.ACTIVE
        else:
            if broken:
                return []
            self._integrity[inst] = event.kind
            previous, state = TradingState.ACTIVE, TradingState.REDUCING
        detail = {"integrity": event.kind.value, "detail": event.detail}
        return [
            StateChange(
                "integrity",
                None,
                inst,
                previous,
                state,
                RiskEventKind.INTEGRITY,
                INTEGRITY_ACTOR,
                event.kind.value,
                detail,
            )
        ]

    # ------------------------------------------------------------------ operator

    def on_control(self, cmd: ControlCommand, accounts: Iterable[str]) -> list[StateChange]:
        """Apply an operator command to every account in ``accounts``."""
        changes: list[StateChange] = []
        for account in accounts:
            changes.extend(self._control_account(cmd, account))
        return changes

    def _control_account(self, cmd: ControlCommand, account: str) -> list[StateChange]:
        target = _ACTION_STATE[cmd.action]
        detail = {"action": cmd.action.value}
        if cmd.instrument != ALL_INSTRUMENTS:
            key = (account, cmd.instrument)
            previous = self._instruments.get(key, TradingState.ACTIVE)
            self._set_instrument(key, target)
            return [
                StateChange(
                    "instrument",
                    account,
                    cmd.instrument,
                    previous,
                    target,
                    RiskEventKind.CONTROL,
                    cmd.actor,
                    cmd.reason,
                    detail,
                )
            ]
        previous = self.account_state(account)
        self._set_account(account, target)
        changes = [
            StateChange(
                "account",
                account,
                ALL_INSTRUMENTS,
                previous,
                target,
                RiskEventKind.CONTROL,
                cmd.actor,
                cmd.reason,
                detail,
            )
        ]
        if cmd.action is ControlAction.RESUME:
            changes.extend(self._resume_all(account, cmd))
        return changes

    def _set_account(self, account: str, state: TradingState) -> None:
        """Set the account layer; ACTIVE is no entry (as for instruments): an account the
        operator resumed is not a layer set, so its tops take the quiet mark path again."""
        if state is TradingState.ACTIVE:
            self._accounts.pop(account, None)
        else:
            self._accounts[account] = state

    def _set_instrument(self, key: tuple[str, str], state: TradingState) -> None:
        if state is TradingState.ACTIVE:
            self._instruments.pop(key, None)
        else:
            self._instruments[key] = state

    def _resume_all(self, account: str, cmd: ControlCommand) -> list[StateChange]:
        changes: list[StateChange] = []
        mismatch = self._mismatch.pop(account, None)
        if mismatch is not None:
            changes.append(self._mismatch_cleared(account, mismatch, cmd.actor, cmd.reason))
        tripped = self._tripped.pop(account, None)
        if tripped is not None:
            changes.append(
                StateChange(
                    "account",
                    account,
                    ALL_INSTRUMENTS,
                    TradingState.HALTED,
                    TradingState.ACTIVE,
                    RiskEventKind.BREAKER_RESET,
                    cmd.actor,
                    cmd.reason,
                    {"tripped_by": tripped},
                )
            )
        for key in [k for k in self._instruments if k[0] == account]:
            previous = self._instruments.pop(key)
            changes.append(
                StateChange(
                    "instrument",
                    account,
                    key[1],
                    previous,
                    TradingState.ACTIVE,
                    RiskEventKind.STATE_CHANGED,
                    cmd.actor,
                    cmd.reason,
                    {"action": "RESUME"},
                )
            )
        return changes

    # ------------------------------------------------------------------ state

    def to_state(self) -> dict[str, Any]:
        """JSON-able snapshot."""
        return {
            "accounts": {a: s.value for a, s in self._accounts.items()},
            "instruments": [[a, i, s.value] for (a, i), s in self._instruments.items()],
            "integrity": {i: k.value for i, k in self._integrity.items()},
            "tripped": dict(self._tripped),
            "mismatch": dict(self._mismatch),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with :meth:`to_state` output."""
        try:
            accounts = {a: TradingState(s) for a, s in state["accounts"].items()}
            instruments = {(a, i): TradingState(s) for a, i, s in state["instruments"]}
            # an ACTIVE layer is no entry (a state saved before that kept them: dropped)
            accounts = {a: s for a, s in accounts.items() if s is not TradingState.ACTIVE}
            instruments = {k: s for k, s in instruments.items() if s is not TradingState.ACTIVE}
            integrity = {i: IntegrityKind(k) for i, k in state["integrity"].items()}
            tripped = {str(a): str(r) for a, r in state["tripped"].items()}
            mismatch = {str(a): str(r) for a, r in state.get("mismatch", {}).items()}
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise StateRestoreError(f"breaker state {state!r}: {exc!r}") from None
        self._accounts, self._instruments = accounts, instruments
        self._integrity, self._tripped = integrity, tripped
        self._mismatch = mismatch
        self._clear.clear()
