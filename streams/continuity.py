"""Re-read records Faust skipped across a rebalance (offset continuity per partition).

When a worker keeps a partition through a rebalance, Faust (faust-streaming 0.15) drops
the records it had fetched but not yet handed to the agent (``flow_control.clear()``)
while the fetch position stays after them, so the agent's next record can be a few
offsets further on, and the commit then covers the skipped ones: they are lost. Seen in
``tests/integration/streams/test_scale_out.py`` as a book GAP (``expected update N, got
N+1``) right after a rebalance.

:class:`OffsetGuard` remembers the last offset each agent processed per partition. A
record further on than the next one makes it seek back and skip the record (it comes
again after the skipped ones). If the same jump shows up again after that seek the
offsets really are missing (a compacted topic, transaction markers) and the record is
taken. Partitions that move to another worker are forgotten at the next assignment: the
other worker's progress is in the committed offsets.
"""

from __future__ import annotations

from typing import Any

import faust
import structlog

log = structlog.get_logger("algostream.streams")


class OffsetGuard:
    def __init__(self, app: faust.App) -> None:
        self.app = app
        #: (agent, partition) -> offset of the last record it processed here
        self.last: dict[tuple[str, Any], int] = {}
        #: (agent, partition) -> (offset sought to, offset that made us seek)
        self.sought: dict[tuple[str, Any], tuple[int, int]] = {}
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    async def _on_assigned(self, _app: Any, *args: Any, signal: Any = None, **_: Any) -> None:
        kept = set(args[0]) if args else set()  # the newly assigned partitions
        for key in [key for key in self.last if key[1] not in kept]:
            del self.last[key]
            self.sought.pop(key, None)

    async def admit(self, event: faust.EventT[bytes], agent: str) -> bool:
        """True if ``agent`` should process ``event`` now; False to skip it (see module)."""
        msg = event.message
        tp, offset = msg.tp, msg.offset
        key = (agent, tp)
        last = self.last.get(key)
        if last is not None and offset <= last:
            return False  # processed here already (delivered again after a seek back)
        if last is not None and offset > last + 1:
            want = (last + 1, offset)
            if self.sought.get(key) != want:
                self.sought[key] = want
                log.warning(
                    "records skipped by the consumer: seeking back",
                    agent=agent,
                    topic=msg.topic,
                    partition=msg.partition,
                    expected=last + 1,
                    got=offset,
                )
                await self.app.consumer.seek(tp, last + 1)
                return False
        self.sought.pop(key, None)
        self.last[key] = offset
        return True
