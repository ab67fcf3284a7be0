"""Dead letters: a record that could not be decoded or handled, with the reason.

Pure: builds the :class:`~algostream.model.records.DeadLetter`; the Faust edge sends it.
"""

from __future__ import annotations

import re

from algostream.model.ids import derive_id
from algostream.model.records import DeadLetter

MAX_PAYLOAD_CHARS = 64_000


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="backslashreplace")
    return data


def dead_letter(
    *,
    agent: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | str | None,
    payload: bytes | str | None,
    error: BaseException,
    ts_event: int,
    now_ns: int,
) -> DeadLetter:
    """The DLQ record for one failed input (same input, same ``record_id``)."""
    text = _text(payload)
    return DeadLetter(
        instrument="DLQ:" + (re.sub(r"[^A-Z0-9_]", "_", topic.upper()) or "UNKNOWN"),
        ts_event=ts_event,
        ts_init=now_ns,
        record_id=derive_id("dlq", agent, topic, partition, offset),
        lineage_id=f"{topic}/{partition}/{offset}",
        source_topic=topic,
        partition=partition,
        offset=offset,
        source_key=_text(key) if key is not None else None,
        payload=text[:MAX_PAYLOAD_CHARS],
        error_type=type(error).__name__,
        reason=str(error)[:2000],
        agent=agent,
    )
