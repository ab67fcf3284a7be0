"""The outage filter: a broker outage's client errors become a few state-change lines."""

from __future__ import annotations

import io
import json
import logging

from algostream.observability import outage
from algostream.observability.logging import make_formatter
from algostream.observability.outage import CLIENT_ERRORS, REACHABLE, OutageFilter

#: the kinds of line aiokafka writes while a broker is away (templates as in aiokafka 0.14)
KINDS = [
    ("aiokafka.conn", "Unable connect to node with id %s: %s"),
    ("aiokafka.client", "Unable to request metadata from node with id %s: %s"),
    ("aiokafka.consumer.group_coordinator", "Error sending heartbeat to %s: %s"),
    ("aiokafka", "Unable to update metadata from [%s]: %s"),
]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(outage_s: float, every_ms: int = 10) -> tuple[list[dict[str, object]], OutageFilter]:
    """An outage of ``outage_s`` with one line of each kind every ``every_ms``, then quiet;
    the lines that reach the output (rendered as JSON)."""
    clock = Clock()
    filt = OutageFilter(every_s=10, repeat_s=60, clock=clock)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(make_formatter("json", out))
    handler.addFilter(filt)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    try:
        for step in range(int(outage_s * 1000 / every_ms)):
            clock.now = step * every_ms / 1000
            for name, template in KINDS:
                logging.getLogger(name).error(template, step % 3, f"[Errno 111] port {step}")
        for _ in range(15):  # the broker is back: quiet from here
            clock.now += 1.0
            filt.tick()
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
    return [json.loads(line) for line in out.getvalue().splitlines()], filt


def test_a_30s_outage_writes_tens_of_lines_with_its_state_changes() -> None:
    before = CLIENT_ERRORS.labels(logger="aiokafka.conn")._value.get()
    lines, _ = _run(30.0)
    events = [line["event"] for line in lines]
    assert len(lines) == len(KINDS) + 4, events  # of 12,000: one per kind, 4 states
    states = [e for e in events if str(e).startswith("kafka ")]
    assert states == [
        "kafka unreachable",
        "kafka still unreachable",
        "kafka still unreachable",
        "kafka reachable again",
    ], events
    back = lines[events.index("kafka reachable again")]
    assert back["attempts"] == 3000 * len(KINDS) and back["down_s"] >= 29.9
    assert back["lines_held_back"] == 3000 * len(KINDS) - len(KINDS)  # one of each kind
    assert CLIENT_ERRORS.labels(logger="aiokafka.conn")._value.get() - before == 3000
    assert REACHABLE._value.get() == 1


def test_a_repeated_line_passes_again_after_the_repeat_interval() -> None:
    lines, _ = _run(130.0, every_ms=1000)
    conn = [line for line in lines if line["logger"] == "aiokafka.conn"]
    assert len(conn) == 3  # at 0, 60 and 120 s


def test_ordinary_lines_and_other_loggers_pass_untouched() -> None:
    filt = OutageFilter(clock=Clock())
    info = logging.LogRecord("aiokafka.conn", logging.INFO, "", 0, "connected", (), None)
    mine = logging.LogRecord("algostream.ingest", logging.ERROR, "", 0, "x", (), None)
    assert all(filt.filter(info) for _ in range(5)) and all(filt.filter(mine) for _ in range(5))
    assert filt.down_since is None


def test_the_process_has_one_filter() -> None:
    assert outage.outage_filter() is outage.outage_filter()
