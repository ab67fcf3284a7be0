"""Capture files: history shared as gzip-compressed JSON lines (``.jsonl.gz``).

Line 1 is a header, every other line one Kafka record::

    {"format":"algostream-capture","version":1,"from_ns":..,"to_ns":..,
     "symbols":["BINANCE:BTCUSDT",..],"topics":["md.raw",..]}
    {"topic":"md.raw","partition":0,"offset":7,"timestamp_ms":..,"key":"BINANCE:BTCUSDT",
     "value":{...record JSON...}}

``value`` is the record's JSON object, or the raw text when the record was not a JSON
object. ``symbols`` holds instrument ids (``VENUE:SYMBOL``). Entries are in event-time
order: by :attr:`CaptureEntry.sort_key` = ``(event_ns, topic, partition, offset)``, where
``event_ns`` is the record's ``ts_event`` (the broker timestamp when it has none), the same
order :mod:`algostream.backtest.source` reads topics back in. :func:`merge_by_event_time`
produces that order; :func:`write_capture` merges and writes in one call. Files are
byte-identical for identical input (gzip mtime and file name are fixed).

>>> import tempfile, pathlib
>>> e = CaptureEntry(topic="md.raw", partition=0, offset=0, timestamp_ms=1, key=None,
...                  value="not json")
>>> path = pathlib.Path(tempfile.mkdtemp()) / "c.jsonl.gz"
>>> with CaptureWriter(path) as w:
...     w.write(e)
>>> list(read_capture(path)) == [e]
True
"""

from __future__ import annotations

import contextlib
import gzip
import heapq
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, Literal, TypeVar
from urllib.parse import parse_qs, urlsplit

import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

from algostream.backtest.errors import CaptureFormatError
from algostream.marketdata.binance import DEPTH_SNAPSHOT_PATH, VENUE
from algostream.marketdata.frames import raw_frame
from algostream.model.ids import INSTRUMENT_PATTERN
from algostream.model.records import RawFrame, Record

FORMAT: Final = "algostream-capture"
VERSION: Final = 1
#: The topic recorded exchange frames are replayed on.
RAW_TOPIC = "md.raw"
#: ``RawFrame.stream`` of a REST depth snapshot; the live ingestor uses the same value.
REST_DEPTH_STREAM = f"rest:{DEPTH_SNAPSHOT_PATH}"

R = TypeVar("R", bound=Record)
_INSTRUMENT_RE = re.compile(INSTRUMENT_PATTERN)
_NS_PER_S = Decimal(1_000_000_000)


class CaptureHeader(BaseModel):
    """The first line of a capture file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["algostream-capture"] = FORMAT
    version: Literal[1] = VERSION
    from_ns: StrictInt | None = Field(default=None, ge=0)
    to_ns: StrictInt | None = Field(default=None, ge=0)
    symbols: tuple[StrictStr, ...] = ()
    topics: tuple[StrictStr, ...] = ()


class CaptureEntry(BaseModel):
    """One Kafka record in a capture file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    topic: StrictStr = Field(min_length=1)
    partition: StrictInt = Field(ge=0)
    offset: StrictInt = Field(ge=0)
    timestamp_ms: StrictInt = Field(ge=0)
    key: StrictStr | None
    value: dict[StrictStr, Any] | StrictStr

    @property
    def event_ns(self) -> int:
        """The record's ``ts_event`` (int ns), or the broker timestamp when it has none."""
        if isinstance(self.value, dict):
            ts = self.value.get("ts_event")
            if type(ts) is int:
                return ts
        return self.timestamp_ms * 1_000_000

    @property
    def sort_key(self) -> tuple[int, str, int, int]:
        """The total order of a capture: ``(event_ns, topic, partition, offset)``."""
        return (self.event_ns, self.topic, self.partition, self.offset)

    def value_bytes(self) -> bytes:
        """The record value as it would be produced to Kafka (JSON bytes or raw text)."""
        if isinstance(self.value, str):
            return self.value.encode()
        return orjson.dumps(self.value)

    def record(self, cls: type[R]) -> R:
        """Decode the value as record type ``cls`` (raises ``RecordDecodeError``)."""
        return cls.from_obj(self.value) if isinstance(self.value, dict) else cls.decode(self.value)

    def to_line(self) -> bytes:
        """One JSON line (no newline), fields in the documented order."""
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_kafka(
        cls,
        topic: str,
        partition: int,
        offset: int,
        timestamp_ms: int,
        key: bytes | None,
        value: bytes,
    ) -> CaptureEntry:
        """An entry from a consumed record; bytes that are not UTF-8 are backslash-escaped."""
        text = value.decode(errors="backslashreplace")
        parsed: Any = None
        with contextlib.suppress(orjson.JSONDecodeError):
            parsed = orjson.loads(value)
        return cls(
            topic=topic,
            partition=partition,
            offset=offset,
            timestamp_ms=timestamp_ms,
            key=None if key is None else key.decode(errors="backslashreplace"),
            value=parsed if isinstance(parsed, dict) else text,
        )


# --------------------------------------------------------------------------- writing


class CaptureWriter:
    """Write a capture file; use as a context manager, :meth:`write` entries in order.

    Entries are spooled to a temporary file and the capture is assembled (header first)
    when the block exits without an exception, then moved into place atomically, so a
    failed run never leaves a half-written capture. Header fields left as ``None`` are
    derived from the entries: event-time range, instrument ids and topics, sorted.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        from_ns: int | None = None,
        to_ns: int | None = None,
        symbols: Iterable[str] | None = None,
        topics: Iterable[str] | None = None,
    ) -> None:
        self.path = Path(path)
        self._from_ns, self._to_ns = from_ns, to_ns
        self._symbols = None if symbols is None else tuple(symbols)
        self._topics = None if topics is None else tuple(topics)
        self._seen_symbols: set[str] = set()
        self._seen_topics: set[str] = set()
        self._min_ns: int | None = None
        self._max_ns: int | None = None
        self._spool: IO[bytes] | None = None
        self.count = 0

    def __enter__(self) -> CaptureWriter:
        self._spool = tempfile.TemporaryFile()
        return self

    def write(self, entry: CaptureEntry) -> None:
        """Append one entry (call inside the ``with`` block)."""
        if self._spool is None:
            raise CaptureFormatError(str(self.path), None, "write() outside the 'with' block")
        self._spool.write(entry.to_line() + b"\n")
        self.count += 1
        ts = entry.event_ns
        self._min_ns = ts if self._min_ns is None else min(self._min_ns, ts)
        self._max_ns = ts if self._max_ns is None else max(self._max_ns, ts)
        self._seen_topics.add(entry.topic)
        if isinstance(entry.value, dict) and isinstance(entry.value.get("instrument"), str):
            self._seen_symbols.add(entry.value["instrument"])

    def header(self) -> CaptureHeader:
        """The header as it will be written (given fields, else derived from entries)."""
        return CaptureHeader(
            from_ns=self._min_ns if self._from_ns is None else self._from_ns,
            to_ns=self._max_ns if self._to_ns is None else self._to_ns,
            symbols=tuple(sorted(self._seen_symbols)) if self._symbols is None else self._symbols,
            topics=tuple(sorted(self._seen_topics)) if self._topics is None else self._topics,
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        spool, self._spool = self._spool, None
        if spool is None:
            return
        with spool:
            if exc_type is None:
                self._assemble(spool)

    def _assemble(self, spool: IO[bytes]) -> None:
        partial = self.path.with_name(self.path.name + ".partial")
        spool.seek(0)
        try:
            with (
                open(partial, "wb") as raw,
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
            ):
                gz.write(orjson.dumps(self.header().model_dump(mode="json")) + b"\n")
                shutil.copyfileobj(spool, gz)
            os.replace(partial, self.path)
        finally:
            partial.unlink(missing_ok=True)


def write_capture(
    path: str | Path, streams: Iterable[Iterable[CaptureEntry]], **header: Any
) -> CaptureHeader:
    """Merge ``streams`` in event-time order and write them; returns the header written.

    ``header`` takes the :class:`CaptureWriter` keywords (``from_ns``, ``to_ns``,
    ``symbols``, ``topics``).
    """
    with CaptureWriter(path, **header) as writer:
        for entry in merge_by_event_time(streams):
            writer.write(entry)
    return writer.header()


def merge_by_event_time(streams: Iterable[Iterable[CaptureEntry]]) -> Iterator[CaptureEntry]:
    """Merge per-partition/per-topic streams by :attr:`CaptureEntry.sort_key`.

    Each input must already be in its own order (offset order within a partition); a
    merge only ever takes the head of an input, so an input keeps its order even where its
    event time steps back. The key is a total order over distinct records, so the output
    is the same whatever order the inputs are given in.
    """
    return heapq.merge(*streams, key=_sort_key)


def _sort_key(entry: CaptureEntry) -> tuple[int, str, int, int]:
    return entry.sort_key


# --------------------------------------------------------------------------- reading


def read_capture_header(path: str | Path) -> CaptureHeader:
    """Read and validate only the header of a capture file."""
    with _GzipLines(path) as lines:
        for n, line in lines:
            return _parse_header(str(path), n, line)
    raise CaptureFormatError(str(path), None, "empty file: no header line")


def read_capture(path: str | Path) -> Iterator[CaptureEntry]:
    """Iterate the entries of a capture file, validating the header first.

    Raises :class:`CaptureFormatError` naming the file and the 1-based line number of a
    corrupt line, a wrong or missing header, or a truncated or corrupt gzip stream.
    """
    where = str(path)
    with _GzipLines(path) as lines:
        header_seen = False
        for n, line in lines:
            if not header_seen:
                _parse_header(where, n, line)
                header_seen = True
                continue
            yield _parse_entry(where, n, line)
        if not header_seen:
            raise CaptureFormatError(where, None, "empty file: no header line")


class _GzipLines:
    """Numbered lines of a gzip file, turning gzip/zlib failures into format errors."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        try:
            self._file = gzip.open(path, "rb")  # noqa: SIM115 - closed in __exit__
        except OSError as exc:
            raise CaptureFormatError(self.path, None, f"cannot open: {exc}") from None

    def __enter__(self) -> Iterator[tuple[int, bytes]]:
        return self._lines()

    def _lines(self) -> Iterator[tuple[int, bytes]]:
        n = 0
        while True:
            try:
                line = self._file.readline()
            except (OSError, EOFError, zlib.error) as exc:
                raise CaptureFormatError(
                    self.path, n + 1, f"gzip stream is corrupt or truncated: {exc}"
                ) from None
            if not line:
                return
            n += 1
            yield n, line

    def __exit__(self, *exc: object) -> None:
        self._file.close()


def _load_object(where: str, n: int, line: bytes) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise CaptureFormatError(where, n, f"not JSON ({exc}): {_short(line)}") from None
    if not isinstance(obj, dict):
        raise CaptureFormatError(where, n, f"expected a JSON object, got {_short(line)}")
    return obj


def _parse_header(where: str, n: int, line: bytes) -> CaptureHeader:
    obj = _load_object(where, n, line)
    if obj.get("format") != FORMAT:
        raise CaptureFormatError(
            where,
            n,
            f"not an algostream capture: format = {obj.get('format')!r}, "
            f"expected {FORMAT!r} in the first line",
        )
    if obj.get("version") != VERSION:
        raise CaptureFormatError(
            where,
            n,
            f"unsupported capture version {obj.get('version')!r}; "
            f"this reader reads version {VERSION}",
        )
    return _validate(CaptureHeader, where, n, obj)


def _parse_entry(where: str, n: int, line: bytes) -> CaptureEntry:
    return _validate(CaptureEntry, where, n, _load_object(where, n, line))


M = TypeVar("M", bound=BaseModel)


def _validate(cls: type[M], where: str, n: int, obj: dict[str, Any]) -> M:
    try:
        return cls.model_validate(obj)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "<line>"
        value = "<missing>" if err["type"] == "missing" else _short(err.get("input"))
        raise CaptureFormatError(where, n, f"field '{loc}' = {value}: {err['msg']}") from None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------------- recorded Binance


def load_recorded_binance_capture(
    ws_path: str | Path, http_path: str | Path | None = None
) -> Iterator[CaptureEntry]:
    """Turn a cryptofeed-style Binance recording into ``md.raw`` capture entries.

    The WebSocket file holds ``<url> <-> <time>`` connection lines (skipped) and
    ``<receive unix seconds>: <frame>`` lines; the HTTP file holds
    ``<url> -> <receive unix seconds>: <json body>`` lines, of which ``/depth`` snapshots
    become ``RawFrame`` entries with stream :data:`REST_DEPTH_STREAM`. Each value is the
    ``RawFrame`` the live ingestor would publish for the same frame and receive time (the
    same record id), keyed by ``BINANCE:<SYMBOL>``. Entries come in receive-time order
    (WebSocket before REST at an equal time), on partition 0 with offsets 0, 1, 2, ...
    """
    ws = ((f.ts_event, 0, f) for f in _ws_frames(Path(ws_path)))
    rest = [(f.ts_event, 1, f) for f in _rest_frames(Path(http_path))] if http_path else []
    merged = heapq.merge(ws, rest, key=lambda item: (item[0], item[1]))
    for offset, (recv_ns, _, frame) in enumerate(merged):
        yield CaptureEntry(
            topic=RAW_TOPIC,
            partition=0,
            offset=offset,
            timestamp_ms=recv_ns // 1_000_000,
            key=frame.instrument,
            value=frame.model_dump(mode="json"),
        )


def _ws_frames(path: Path) -> Iterator[RawFrame]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            text = line.rstrip("\r\n")
            if not text.strip() or " <-> " in text:
                continue
            stamp, _, body = text.partition(": ")
            recv_ns = _seconds_to_ns(str(path), n, stamp)
            symbol, stream = _ws_symbol(str(path), n, body)
            yield _raw(str(path), n, body, recv_ns, stream, symbol)


def _ws_symbol(where: str, n: int, body: str) -> tuple[str | None, str]:
    """(symbol, stream) of a combined ``{"stream","data"}`` or a raw stream frame."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise CaptureFormatError(where, n, f"frame is not JSON ({exc}): {_short(body)}") from None
    if not isinstance(obj, dict):
        raise CaptureFormatError(where, n, f"frame is not a JSON object: {_short(body)}")
    stream = obj.get("stream")
    if isinstance(stream, str) and "@" in stream:
        return stream.partition("@")[0], stream
    data = obj.get("data", obj)
    symbol = data.get("s") if isinstance(data, dict) else None
    return (symbol if isinstance(symbol, str) else None), ""


def _rest_frames(path: Path) -> Iterator[RawFrame]:
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            text = line.rstrip("\r\n")
            if not text.strip():
                continue
            url, found, rest = text.partition(" -> ")
            if not found:
                raise CaptureFormatError(str(path), n, "expected '<url> -> <time>: <json>'")
            stamp, _, body = rest.partition(": ")
            recv_ns = _seconds_to_ns(str(path), n, stamp)
            parts = urlsplit(url)
            symbols = parse_qs(parts.query).get("symbol")
            if not parts.path.endswith("/depth") or not symbols:
                continue
            yield _raw(str(path), n, body, recv_ns, REST_DEPTH_STREAM, symbols[0])


def _raw(where: str, n: int, body: str, recv_ns: int, stream: str, symbol: str | None) -> RawFrame:
    instrument = f"{VENUE}:{symbol.upper()}" if symbol else f"{VENUE}:*"
    if not _INSTRUMENT_RE.fullmatch(instrument):
        raise CaptureFormatError(where, n, f"symbol {symbol!r} gives no valid instrument id")
    return raw_frame(body, recv_ns, VENUE, stream, instrument)


def _seconds_to_ns(where: str, n: int, stamp: str) -> int:
    """Exact ns from a decimal seconds string (a float would lose the last digits)."""
    try:
        seconds = Decimal(stamp.strip())
    except InvalidOperation:
        seconds = Decimal("NaN")
    if not seconds.is_finite() or seconds < 0:
        raise CaptureFormatError(
            where,
            n,
            f"receive time {_short(stamp)} is not unix seconds; expected '<seconds>: <frame>'",
        )
    return int((seconds * _NS_PER_S).to_integral_value(rounding=ROUND_FLOOR))
