"""The Faust app of a worker role.

``create_app(settings, role)`` builds one Faust app per worker role (``market``,
``signals``, ``trading`` ...): each role is its own consumer group, so a worker runs only
its role's agents and roles scale independently. Topics carry raw bytes; records are
decoded at the edge (:mod:`streams.edge`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from algostream.config import Settings
from algostream.kafka.catalog import load_catalog
from algostream.kafka.clients import faust_credentials
from streams import framework
from streams.continuity import RecoveryWatchdog
from streams.edge import Edge


def create_app(settings: Settings, role: str, **overrides: Any) -> tuple[faust.App, Edge]:
    """Build the Faust app for ``role`` from config; returns the app and its edge."""
    k = settings.kafka
    conf: dict[str, Any] = {
        "broker": f"kafka://{k.bootstrap_servers}",
        "broker_client_id": f"{k.client_id}-{role}",
        # SASL/TLS for real clusters: the same settings as algostream's own clients
        "broker_credentials": faust_credentials(k),
        "topic_partitions": 3,
        "topic_replication_factor": k.replication_factor,
        "topic_allow_declare": True,
        "store": k.table_store,
        "datadir": f"{k.data_dir}/{role}",
        "web_enabled": True,
        "web_port": k.web_port,
        "web_host": "127.0.0.1",
        "web_bind": "127.0.0.1",
        "producer_acks": -1 if k.acks == "all" else int(k.acks),
        "producer_linger_ms": k.linger_ms,
        "producer_max_batch_size": 1_048_576,
        # Faust's fetcher awaits a commit (producer flush + offset commit) inline every
        # `commit_every` acks, stalling the stream: at 100 it capped the book agent at
        # ~600 updates/s. Commits come from the 1 s interval timer instead.
        "broker_commit_every": 100_000,
        # a killed worker's partitions move to a live one within ~10 s, not Faust's 60 s
        "broker_session_timeout": 10.0,
        "broker_heartbeat_interval": 3.0,
        "broker_commit_interval": 1.0,
        "consumer_auto_offset_reset": "earliest",
        "table_cleanup_interval": 30.0,
        "autodiscover": False,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    conf.update(overrides)
    framework.install()
    Path(conf["datadir"]).mkdir(parents=True, exist_ok=True)
    app = faust.App(f"{k.app_id}-{role}", **conf)
    RecoveryWatchdog(app).install()
    edge = Edge(app, settings, load_catalog(), role)
    framework.idle_faust_fetches(app, edge)
    return app, edge
