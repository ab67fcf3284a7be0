"""Stage state in Faust tables: :class:`StageState` (one stage's state per instrument, each
key in its instrument's partition), :class:`DirectTable` (its table: changelog records
straight to the producer), :class:`Recent` (bounded ids)."""

from __future__ import annotations

from collections import OrderedDict
from functools import cached_property
from typing import TYPE_CHECKING, Any

import faust
from aiokafka.partitioner import murmur2
from faust.serializers import codecs

from streams.edge import Edge

if TYPE_CHECKING:
    from streams.outbox import Outbox


class DirectTable(faust.Table):  # type: ignore[type-arg]
    """A Faust table whose changelog records are sent straight to the producer.

    ``table[key] = value`` queues its changelog record in Faust's ProducerBuffer, which one
    task drains a record at a time, and Faust's conductor stops delivering records while
    that buffer holds more than 100: with a few level keys per book update this capped the
    book agent at ~300-500 updates/s while its own code used a fraction of a core
    (measured: 3.1 s waiting for records vs 0.5 s working per 1000). :meth:`write` sends
    the changelog record to the producer (awaited, so in order, and flushed before any
    commit like every other send) to the partition of the records that caused it.
    """

    @classmethod
    def add(cls, app: faust.App, name: str, partitions: int) -> DirectTable:
        table = cls(app, name=name, default=None, partitions=partitions)
        app.tables.add(table)
        return table

    async def write(self, edge: Edge, partition: int, key: str, value: Any) -> None:
        """Set (or, with ``value is None``, delete) ``key`` and send its changelog record."""
        await edge.send_raw(*self.stage(key, value), partition)

    def stage(self, key: str, value: Any) -> tuple[str, bytes | None, bytes | None]:
        """Set (or, with ``value is None``, delete) ``key``; its changelog record's topic,
        key and value, for the caller to send to the partition that caused it."""
        key_codec, value_codec = self._codecs
        if value is None:
            self.data.pop(key, None)
            payload = None
        else:
            self.data[key] = value
            payload = value_codec.dumps(value)
        raw_keys = self._raw_keys
        raw_key = raw_keys.get(key)
        if raw_key is None:
            if len(raw_keys) >= self.RAW_KEYS:
                raw_keys.clear()
            raw_key = raw_keys[key] = key_codec.dumps(key)
        return self._changelog_name, raw_key, payload

    #: serialised keys kept (level keys repeat: a price level is written again and again)
    RAW_KEYS = 100_000

    @cached_property
    def _raw_keys(self) -> dict[str, bytes]:
        return {}

    @cached_property
    def _codecs(self) -> tuple[Any, Any]:
        """The key and value codecs: what ``Topic.prepare_key/prepare_value`` use for a
        plain (non-``faust.Record``) value, without their registry lookups per call
        (3 -> ~1 µs a staged key; the same bytes, tested)."""
        return (
            codecs.get_codec(self.key_serializer or "json"),
            codecs.get_codec(self.value_serializer or "json"),
        )

    @cached_property
    def _changelog_name(self) -> str:
        return self.changelog_topic.get_topic_name()


class Recent:
    """The last ``size`` ids seen (a bounded, insertion-ordered set)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, item: object) -> bool:
        return item in self._ids

    def add(self, item: str) -> None:
        self._ids[item] = None
        while len(self._ids) > self.size:
            self._ids.popitem(last=False)


class StageState:
    """One stage's state, per instrument, in a table co-partitioned with ``topic`` (the
    stage's input, keyed by instrument): the one save/restore protocol of the stages.

    A key's changelog record goes to its instrument's partition (:meth:`partition`: the
    partition the producer gives the instrument's records on every topic keyed by
    instrument, the same number everywhere), whichever task writes it (an agent, a stage
    called in-process, a timer), so the worker that takes the partition over recovers the
    state with it. :meth:`restore` gives a key's saved value once per ownership: the stage
    holds it in memory from then on, until :meth:`forget` (the worker calls it at every
    rebalance, after the readers have handed over).
    """

    def __init__(self, table: Any, edge: Edge, partitions: int) -> None:
        self.table, self.edge, self.partitions = table, edge, partitions
        self._restored: set[str] = set()
        self._partition: dict[str, int] = {}

    @classmethod
    def add(cls, app: faust.App, edge: Edge, name: str, topic: str) -> StageState:
        """The state ``name`` of a stage of ``app``, co-partitioned with catalog ``topic``."""
        partitions = edge.catalog[topic].partitions
        return cls(DirectTable.add(app, name, partitions), edge, partitions)

    def partition(self, instrument: str) -> int:
        """``instrument``'s partition (murmur2 of the key, as the producers partition)."""
        found = self._partition.get(instrument)
        if found is None:
            found = (murmur2(instrument.encode()) & 0x7FFFFFFF) % self.partitions
            self._partition[instrument] = found
        return found

    def get(self, key: str) -> Any:
        """``key``'s saved value (None: none)."""
        return self.table.get(key)

    def restore(self, key: str) -> Any:
        """``key``'s saved value the first time it is asked since :meth:`forget` (None
        then if none is saved, and at every later call)."""
        if key in self._restored:
            return None
        self._restored.add(key)
        return self.table.get(key)

    async def save(self, key: str, value: Any, instrument: str | None = None) -> None:
        """Set (``None``: delete) ``key`` of ``instrument`` (default: the key itself) and
        send its changelog record to the instrument's partition."""
        await self.table.write(self.edge, self.partition(instrument or key), key, value)

    def stage(self, outbox: Outbox, key: str, value: Any, instrument: str | None = None) -> None:
        """:meth:`save` in ``outbox`` (a stage writing a batch's keys at once)."""
        topic, raw_key, payload = self.table.stage(key, value)
        outbox.add(topic, raw_key, payload, self.partition(instrument or key))

    async def forget(self) -> None:
        """A rebalance: every key is restored again at its next use."""
        self._restored.clear()
