"""The account state is read back as committed: aborted writes and other accounts' keys
are not in it (real broker, a transactional producer like the trading worker's)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from streams.account_state import AccountState, ensure_topic, state_topic


async def _write(bootstrap: str, state: AccountState, *, commit: bool) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, transactional_id=f"{state.topic}-writer"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for key, value in state.take_staged():
            await producer.send(state.topic, value, key=key, partition=0)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def test_load_reads_committed_writes_of_its_account_only(provisioned) -> None:  # type: ignore[no-untyped-def]
    cfg = provisioned.kafka
    topic = state_topic(cfg)
    await ensure_topic(cfg, topic)
    writer = AccountState("paper", topic)
    decisions = writer.table("risk-decisions")
    decisions["k-1"] = {"approved": True, "qty": "0.01"}
    writer.table("exec-orders")["k-1"] = "prop-1"
    await _write(cfg.bootstrap_servers, writer, commit=True)
    decisions["k-2"] = {"approved": True, "qty": "0.02"}  # in an aborted transaction
    await _write(cfg.bootstrap_servers, writer, commit=False)
    other = AccountState("other", topic)
    other.table("risk-decisions")["k-9"] = {"approved": False}
    await _write(cfg.bootstrap_servers, other, commit=True)
    decisions["k-1"] = {"approved": False, "qty": "0.01"}  # a later committed value wins
    await _write(cfg.bootstrap_servers, writer, commit=True)

    reader = AccountState("paper", topic)
    read_decisions, read_orders = reader.table("risk-decisions"), reader.table("exec-orders")
    await reader.load(cfg)

    assert reader.loaded
    assert dict(read_decisions.items()) == {"k-1": {"approved": False, "qty": "0.01"}}
    assert dict(read_orders.items()) == {"k-1": "prop-1"}
    reader.drop()
    assert not reader.loaded and len(read_decisions) == 0
