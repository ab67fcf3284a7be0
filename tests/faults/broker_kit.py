"""Brokers of a test's own (never the shared one): SASL with ACLs, a KRaft cluster.

Each starts under the test's ``tmp_path`` on free ports, with the jars ``make broker``
fetched into ``.kafka/libs`` (fetched there on first use), and is stopped after the test.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from algostream.kafka.local_broker import LocalBroker, _port_free, new_cluster_id
from tests.kafka_kit import free_port

REPO = Path(__file__).resolve().parents[2]
LIBS = REPO / ".kafka" / "libs"
#: the Kafka principal brokers and the admin tools use
ADMIN = "admin"


def free_port_pair() -> int:
    """A port whose successor is free too (LocalBroker's controller port is port + 1)."""
    while True:
        port = free_port()
        if port < 65535 and _port_free(port) and _port_free(port + 1):
            return port


def sasl_broker(root: Path, users: dict[str, str]) -> LocalBroker:
    """One KRaft node with a SASL/PLAIN listener and the StandardAuthorizer: no ACL, no
    access (``allow.everyone.if.no.acl.found=false``); ``admin`` is a super user (and
    the controller listener, plaintext on loopback, is the node talking to itself)."""
    port = free_port_pair()
    jaas_users = " ".join(f'user_{u}="{p}"' for u, p in users.items())
    jaas = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{ADMIN}" password="{users[ADMIN]}" {jaas_users};'
    )
    overrides = {
        "listeners": f"SASL_PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}",
        "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{port}",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
        "inter.broker.listener.name": "SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "PLAIN",
        "sasl.mechanism.inter.broker.protocol": "PLAIN",
        "listener.name.sasl_plaintext.plain.sasl.jaas.config": jaas,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": f"User:{ADMIN};User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }
    client = {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "PLAIN",
        "sasl_plain_username": ADMIN,
        "sasl_plain_password": users[ADMIN],
    }
    return LocalBroker(root, port=port, libs=LIBS, overrides=overrides, client=client)


def kafka_tool(broker: LocalBroker, main_class: str, *args: str, password: str) -> str:
    """Run a Kafka command-line tool (``kafka.admin.AclCommand`` ...) as ``admin``."""
    props = broker.root / f"admin-{uuid.uuid4().hex[:6]}.properties"
    props.write_text(
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'username="{ADMIN}" password="{password}";\n'
    )
    props.chmod(0o600)
    connect = ("--bootstrap-server", broker.bootstrap, "--command-config", str(props))
    done = subprocess.run(
        ["java", "-Xmx256m", "-cp", f"{broker.libs}/*", main_class, *connect, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def cluster_nodes(root: Path, n: int = 3) -> list[LocalBroker]:
    """``n`` KRaft nodes on loopback, each broker and controller (voters: all of them)."""
    ports = [free_port_pair() for _ in range(n)]
    voters = ",".join(f"{i + 1}@127.0.0.1:{p + 1}" for i, p in enumerate(ports))
    cluster_id = new_cluster_id()
    rf = str(min(n, 3))
    return [
        LocalBroker(
            root / f"node-{i + 1}",
            port=p,
            heap="-Xms256m -Xmx512m",
            libs=LIBS,
            cluster_id=cluster_id,
            overrides={
                "node.id": str(i + 1),
                "controller.quorum.voters": voters,
                "offsets.topic.replication.factor": rf,
                "transaction.state.log.replication.factor": rf,
                "transaction.state.log.min.isr": "2",
                "min.insync.replicas": "2",
                "default.replication.factor": rf,
            },
        )
        for i, p in enumerate(ports)
    ]
