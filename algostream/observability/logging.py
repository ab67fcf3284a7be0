"""Structured logging: structlog for our code, stdlib (faust, aiokafka) routed through it.

One handler on the root logger renders every record, ours and the libraries', the same
way: JSON lines when the output is not a terminal (or ``log_format="json"``), a readable
console format otherwise. The Kafka client libraries' warnings and errors are aggregated
into a few lines per broker outage (:mod:`algostream.observability.outage`). Context bound
with :func:`log_context` (instrument, topic, partition, offset, lineage id) is added to
every line logged in that task, including the libraries' lines. Secrets never reach the
output: :func:`mask_secrets` replaces the value of any key that looks secret and any
registered secret string (:func:`register_secret`).

>>> import io
>>> out = io.StringIO()
>>> configure_logging(log_format="json", stream=out)
>>> register_secret("s3cr3t-value")
>>> with log_context(instrument="BINANCE:BTCUSDT", offset=7):
...     structlog.get_logger("demo").info("signed", query="sig=s3cr3t-value", api_key="k")
>>> line = json.loads(out.getvalue())
>>> line["query"], line["api_key"], line["offset"]
('sig=***', '***', 7)
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import IO, Any, Literal

import structlog
from pydantic import BaseModel, SecretStr
from structlog.typing import EventDict, Processor, WrappedLogger

from algostream.observability import health, outage
from algostream.observability.errors import LoggingConfigError
from algostream.observability.outage import outage_filter

__all__ = [
    "MASK",
    "SECRET_KEY_PARTS",
    "configure_logging",
    "faust_logging_config",
    "log_context",
    "make_formatter",
    "mask_secrets",
    "register_secret",
    "register_secrets_from",
]

MASK = "***"
#: A key whose lower-cased name contains one of these has its value masked.
SECRET_KEY_PARTS: tuple[str, ...] = ("key", "secret", "password", "token", "authorization")
#: Registered secrets at least this long are also masked inside longer strings.
MIN_SUBSTRING_LEN = 6

LogFormat = Literal["auto", "json", "console"]

#: fields of stdlib log records (``extra=``) rendered: the outage and health lines'
EXTRA_FIELDS = (*outage.FIELDS, *health.FIELDS)

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | SecretStr | None) -> None:
    """Mask ``value`` wherever it appears in a log line from now on (empty is ignored)."""
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    if text:
        with _secrets_lock:
            _secrets.add(text)


def register_secrets_from(model: BaseModel) -> int:
    """Register every :class:`~pydantic.SecretStr` in a (nested) settings model.

    Returns how many non-empty secrets were registered.
    """
    count = 0
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            register_secret(value)
            count += 1
        elif isinstance(value, BaseModel):
            count += register_secrets_from(value)
    return count


def _is_secret_key(key: object) -> bool:
    lowered = str(key).lower()
    return any(part in lowered for part in SECRET_KEY_PARTS)


def _scrub(value: Any, secrets: frozenset[str]) -> Any:
    if isinstance(value, str):
        if value in secrets:
            return MASK
        for secret in secrets:
            if len(secret) >= MIN_SUBSTRING_LEN and secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, bytes):
        text = value.decode("utf-8", errors="backslashreplace")
        scrubbed = _scrub(text, secrets)
        return value if scrubbed == text else scrubbed
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, Mapping):
        return {k: MASK if _is_secret_key(k) else _scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v, secrets) for v in value]
    return value


def mask_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secret-looking keys and registered secret strings."""
    with _secrets_lock:
        secrets = frozenset(_secrets)
    for key, value in list(event_dict.items()):
        if key.startswith("_"):  # structlog's own metadata (_record, _from_structlog)
            continue
        event_dict[key] = MASK if _is_secret_key(key) else _scrub(value, secrets)
    return event_dict


@contextmanager
def log_context(
    *,
    instrument: str | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    lineage_id: str | None = None,
    **extra: Any,
) -> Iterator[None]:
    """Bind record context to every log line of this task/thread inside the block.

    ``None`` values are not bound. Uses context variables, so concurrent Faust agents
    (one asyncio task each) never see each other's context.
    """
    fields = {
        "instrument": instrument,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "lineage_id": lineage_id,
        **extra,
    }
    with structlog.contextvars.bound_contextvars(
        **{k: v for k, v in fields.items() if v is not None}
    ):
        yield


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]


def _json_dumps(obj: Any, **_: Any) -> str:
    return json.dumps(obj, default=str, separators=(",", ":"))


def _resolve_format(log_format: str, stream: IO[str]) -> Literal["json", "console"]:
    if log_format == "auto":
        isatty = getattr(stream, "isatty", None)
        return "console" if callable(isatty) and isatty() else "json"
    if log_format not in ("json", "console"):
        raise LoggingConfigError(f"log_format={log_format!r}: expected 'auto', 'json' or 'console'")
    return "json" if log_format == "json" else "console"


def make_formatter(log_format: str = "auto", stream: IO[str] | None = None) -> logging.Formatter:
    """The formatter that renders stdlib and structlog records (masking secrets)."""
    resolved = _resolve_format(log_format, stream or sys.stdout)
    renderer: Processor = (
        structlog.processors.JSONRenderer(serializer=_json_dumps)
        if resolved == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder(EXTRA_FIELDS)],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            mask_secrets,
            renderer,
        ],
    )


def _settings(config: Any, log_format: str | None, level: str | None) -> tuple[str, str]:
    fmt = log_format or (getattr(config, "log_format", None) if config else None) or "auto"
    lvl = level or (getattr(config, "log_level", None) if config else None) or "INFO"
    if lvl.upper() not in logging.getLevelNamesMapping():
        raise LoggingConfigError(f"log_level={lvl!r}: expected DEBUG, INFO, WARNING or ERROR")
    return fmt, lvl.upper()


def configure_logging(
    config: Any = None,
    *,
    log_format: LogFormat | None = None,
    level: str | None = None,
    stream: IO[str] | None = None,
) -> None:
    """Configure structlog and the root logger (replacing its handlers).

    ``config`` is an :class:`~algostream.config.ObservabilityConfig` (``log_level``,
    ``log_format``); keyword arguments override it. Safe to call more than once.
    """
    fmt, lvl = _settings(config, log_format, level)
    out = stream or sys.stdout
    handler = logging.StreamHandler(out)
    handler.setFormatter(make_formatter(fmt, out))
    handler.addFilter(outage_filter())  # a broker outage is a few lines, not thousands
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def faust_logging_config(
    config: Any = None, *, log_format: LogFormat | None = None, level: str | None = None
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` dict for ``faust.Worker(logging_config=...)``.

    Faust's worker replaces the root handlers at start-up; with this config its
    replacement is our formatter, so faust/aiokafka lines stay structured and masked.
    Call :func:`configure_logging` first (it sets up structlog itself).
    """
    fmt, lvl = _settings(config, log_format, level)
    formatter: MutableMapping[str, Any] = {"()": make_formatter, "log_format": fmt}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"algostream": formatter},
        "filters": {"outage": {"()": outage_filter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "algostream",
                "filters": ["outage"],
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": lvl, "handlers": ["default"]},
    }
