"""The trading worker's account state, written in the account's transaction.

With fencing on (:mod:`streams.fencing`) the risk gate and the paper broker keep their
state here instead of in Faust tables: a Faust table's changelog records go through
Faust's own producer, outside the account's transaction, so a ``kill -9`` or a fenced
owner left state that counted decisions and fills nobody ever saw (the restarted worker's
position then differed from the visible fills), and faust 0.15's recovery of a changelog
that ends in a transaction marker never reaches its highwater.

One compacted topic, ``<app_id>-trading-state-changelog`` (a changelog to ``topics
apply`` and to the test clean-up), created by the worker that first needs it. Its key is
``[account, table, key]`` in JSON, its value the table value in Faust's JSON codec (what
the tables stored). A write (``table[key] = value``) changes the value in memory at once
and is staged; :class:`~streams.fencing.AccountTransaction` sends what is staged in its
open transaction before it commits, with the outputs and offsets the write goes with.
The owner reads the topic back ``read_committed`` (to its last stable offset) when it
takes the account over, after its producer fenced the older one, and drops it when it
hands the account over or is fenced.

>>> state = AccountState("paper", "algostream-trading-state-changelog")
>>> decisions = state.table("risk-decisions")
>>> decisions["k-1"] = {"approved": True}
>>> state.take_staged()[0][0]
b'["paper","risk-decisions","k-1"]'
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import ItemsView, KeysView
from typing import Any

import structlog
from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faust.serializers import codecs

from algostream.config import KafkaConfig
from algostream.kafka.clients import make_admin
from algostream.kafka.reader import read_to_end

log = structlog.get_logger("algostream.fencing")

#: staged record: key and value bytes (None: a tombstone)
Staged = tuple[bytes, bytes | None]


def state_topic(cfg: KafkaConfig) -> str:
    """The account state's topic (no topic prefix: like the tables' changelogs)."""
    return f"{cfg.app_id}-trading-state-changelog"


class StateTable:
    """One table of the account state: the part of a Faust table's interface the trading
    stages use (``get``, ``[]``, ``items``, ``keys``)."""

    def __init__(self, state: AccountState, name: str) -> None:
        self.state = state
        self.name = name
        self.data: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.data.get(key)  # like the tables' default=None

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.state.stage(self.name, key, value)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __len__(self) -> int:
        return len(self.data)

    def items(self) -> ItemsView[str, Any]:
        return self.data.items()

    def keys(self) -> KeysView[str]:
        return self.data.keys()


class AccountState:
    """The account's tables, their staged writes, and loading them back (module doc)."""

    def __init__(self, account: str, topic: str) -> None:
        self.account = account
        self.topic = topic
        self.tables: dict[str, StateTable] = {}
        self.loaded = False
        self._staged: list[Staged] = []
        self._codec = codecs.get_codec("json")

    def table(self, name: str) -> StateTable:
        if name not in self.tables:
            self.tables[name] = StateTable(self, name)
        return self.tables[name]

    def _key(self, table: str, key: str) -> bytes:
        return json.dumps([self.account, table, key], separators=(",", ":")).encode()

    def stage(self, table: str, key: str, value: Any) -> None:
        payload = None if value is None else self._codec.dumps(value)
        self._staged.append((self._key(table, key), payload))

    def has_staged(self) -> bool:
        return bool(self._staged)

    def take_staged(self) -> list[Staged]:
        """The writes made since the last call, oldest first (for the transaction)."""
        staged, self._staged = self._staged, []
        return staged

    def drop(self) -> None:
        """Forget everything (a hand-over, or fenced): loaded again at the next take-over."""
        for table in self.tables.values():
            table.data.clear()
        self._staged = []
        self.loaded = False

    async def load(self, cfg: KafkaConfig) -> None:
        """Read the account's committed state (the topic is created if missing)."""
        self.drop()
        await ensure_topic(cfg, self.topic)
        records = await read_to_end(cfg.model_copy(update={"topic_prefix": ""}), self.topic)
        for rec in records:
            account, table, key = json.loads(rec.key or b"[]")
            if account != self.account or table not in self.tables:
                continue
            data = self.tables[table].data
            if rec.value is None:
                data.pop(key, None)
            else:
                data[key] = self._codec.loads(rec.value)
        self.loaded = True
        log.info(
            "account state loaded",
            topic=self.topic,
            records=len(records),
            keys={name: len(t.data) for name, t in self.tables.items()},
        )


async def ensure_topic(cfg: KafkaConfig, name: str) -> None:
    """Create the compacted state topic like a table changelog (one partition, the
    configured replication factor and ``min.insync.replicas``) unless it exists."""
    configs = {"cleanup.policy": "compact"}
    if cfg.min_insync_replicas is not None:
        configs["min.insync.replicas"] = str(cfg.min_insync_replicas)
    admin = make_admin(cfg)
    await admin.start()
    try:
        if name in await admin.list_topics():
            return
        topic = NewTopic(name, 1, cfg.replication_factor, topic_configs=configs)
        with contextlib.suppress(TopicAlreadyExistsError):  # another worker was first
            await admin.create_topics([topic])
    finally:
        await admin.close()
