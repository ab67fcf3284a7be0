"""On a broker with SASL and ACLs, only the operator's principal may write ``control``.

A broker of the test's own (SASL/PLAIN listener, KRaft's StandardAuthorizer, nothing
allowed without an ACL) with README's ACLs for the ``control`` topic: the operator may
write it, the trading worker may read it. The CLI run as the trading principal (it can
read ``control``, holds the operator key even) is refused by the broker: nothing reaches
the topic; run as the operator it writes one signed command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from algostream.config import load_settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.clients import make_consumer, make_producer
from algostream.kafka.local_broker import LocalBroker
from algostream.kafka.provision import apply_catalog
from algostream.model import ControlCommand
from tests.faults.broker_kit import ADMIN, kafka_tool, sasl_broker

PREFIX = "acl."
TRADING_OUTPUTS = ("orders.approved", "orders.rejected", "orders.events", "risk.events", "dlq")


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[tuple[LocalBroker, dict[str, str]]]:
    users = {name: uuid.uuid4().hex for name in (ADMIN, "operator", "trading")}
    node = sasl_broker(tmp_path / "kafka", users)
    node.start()
    try:
        yield node, users
    finally:
        node.stop()


def env_for(node: LocalBroker, user: str, password: str) -> dict[str, str]:
    return {
        "ALGOSTREAM__KAFKA__BOOTSTRAP_SERVERS": node.bootstrap,
        "ALGOSTREAM__KAFKA__TOPIC_PREFIX": PREFIX,
        "ALGOSTREAM__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "ALGOSTREAM__KAFKA__SASL_MECHANISM": "PLAIN",
        "ALGOSTREAM__KAFKA__SASL_USERNAME": user,
        "ALGOSTREAM_SASL_PASSWORD": password,
        "ALGOSTREAM_CONTROL_KEY": "acl-test-operator-key-0123456789abcdef",
    }


async def read_control(settings, want: int, timeout_s: float) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The values on ``control``, read as ``settings``' principal, until ``want`` or the
    deadline."""
    consumer = make_consumer(settings.kafka, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign([TopicPartition(PREFIX + "control", 0)])
        await consumer.seek_to_beginning()
        out: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        while len(out) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            out += [r.value for records in batch.values() for r in records]
        return out
    finally:
        await consumer.stop()


def control_cli(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "algostream", "control", "halt", "--reason", "acl drill"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_principal_without_write_on_control_is_refused(broker) -> None:  # type: ignore[no-untyped-def]
    node, users = broker
    admin = load_settings(env=env_for(node, ADMIN, users[ADMIN]))
    report = await apply_catalog(load_catalog(), admin.kafka)
    assert report.ok, report.drift
    control = PREFIX + "control"
    acl = "kafka.admin.AclCommand"
    kafka_tool(node, acl, "--add", "--allow-principal", "User:operator", "--operation", "Write",
               "--operation", "Describe", "--topic", control, password=users[ADMIN])  # fmt: skip
    kafka_tool(node, acl, "--add", "--allow-principal", "User:trading", "--operation", "Read",
               "--operation", "Describe", "--topic", control, password=users[ADMIN])  # fmt: skip
    # the trading worker writes its own outputs (so its idempotent producer may start)
    for topic in TRADING_OUTPUTS:
        kafka_tool(node, acl, "--add", "--allow-principal", "User:trading", "--operation",
                   "Write", "--topic", PREFIX + topic, password=users[ADMIN])  # fmt: skip
    listed = kafka_tool(node, acl, "--list", "--topic", control, password=users[ADMIN])
    assert "User:operator" in listed and "User:trading" in listed, listed

    trading = load_settings(env=env_for(node, "trading", users["trading"]))
    producer = make_producer(trading.kafka)
    await producer.start()
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            await producer.send_and_wait(control, b"{}", key=b"ALL:*")
    finally:
        await producer.stop()
    refused = control_cli(env_for(node, "trading", users["trading"]))
    assert refused.returncode != 0, refused.stdout
    assert "TopicAuthorizationFailed" in refused.stdout + refused.stderr, refused.stdout[-2000:]
    assert not await read_control(admin, 1, timeout_s=2)

    sent = control_cli(env_for(node, "operator", users["operator"]))
    assert sent.returncode == 0, sent.stdout + sent.stderr
    [record] = await read_control(admin, 1, timeout_s=30)
    cmd = ControlCommand.decode(record)
    assert cmd.reason == "acl drill" and cmd.signature
