"""Logging setup: JSON/console rendering, bound context, stdlib routing, secret masking."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from algostream.config import load_settings
from algostream.observability import logging as obs_logging
from algostream.observability.errors import LoggingConfigError
from algostream.observability.logging import (
    MASK,
    configure_logging,
    faust_logging_config,
    log_context,
    register_secret,
    register_secrets_from,
)


class TtyStream(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    secrets = set(obs_logging._secrets)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    obs_logging._secrets.clear()
    obs_logging._secrets.update(secrets)


def _lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def _secret() -> str:
    return f"sk-{uuid.uuid4().hex}"


def test_non_tty_output_is_one_json_object_per_line() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    log = structlog.get_logger("algostream.test")
    log.info("first", n=1)
    log.warning("second", price="42.5")
    first, second = _lines(out)
    assert first["event"] == "first" and first["n"] == 1 and first["level"] == "info"
    assert first["logger"] == "algostream.test" and first["timestamp"].endswith("Z")
    assert second["level"] == "warning" and second["price"] == "42.5"


def test_tty_output_is_console_text_and_json_can_be_forced() -> None:
    tty = TtyStream()
    configure_logging(stream=tty)
    structlog.get_logger("t").info("hello console", n=3)
    text = tty.getvalue()
    assert "hello console" in text and "n=3" in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    forced = TtyStream()
    configure_logging(stream=forced, log_format="json")
    structlog.get_logger("t").info("hello json")
    assert _lines(forced)[0]["event"] == "hello json"


def test_level_and_format_come_from_the_observability_config() -> None:
    settings = load_settings(
        env={
            "ALGOSTREAM__OBSERVABILITY__LOG_LEVEL": "WARNING",
            "ALGOSTREAM__OBSERVABILITY__LOG_FORMAT": "json",
        }
    )
    out = TtyStream()
    configure_logging(settings.observability, stream=out)
    log = structlog.get_logger("t")
    log.info("dropped")
    log.warning("kept")
    assert [line["event"] for line in _lines(out)] == ["kept"]


def test_bound_context_is_added_inside_the_block_only() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    log = structlog.get_logger("t")
    with log_context(
        instrument="BINANCE:BTCUSDT", topic="md.book", partition=2, offset=41, lineage_id="rec-1"
    ):
        log.info("inside")
    log.info("outside")
    inside, outside = _lines(out)
    assert inside["instrument"] == "BINANCE:BTCUSDT" and inside["topic"] == "md.book"
    assert inside["partition"] == 2 and inside["offset"] == 41
    assert inside["lineage_id"] == "rec-1"
    assert not {"instrument", "topic", "partition", "offset", "lineage_id"} & set(outside)


def test_stdlib_library_logs_are_rendered_with_context_and_masked() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    secret = _secret()
    register_secret(secret)
    with log_context(topic="orders.approved", offset=9):
        logging.getLogger("aiokafka.consumer").warning("auth with %s failed", secret)
    # (with it, at most a "kafka unreachable" line of the outage filter: its own test)
    (line,) = [line for line in _lines(out) if line["logger"] != "algostream.kafka.outage"]
    assert line["logger"] == "aiokafka.consumer" and line["level"] == "warning"
    assert line["event"] == f"auth with {MASK} failed"
    assert line["topic"] == "orders.approved" and line["offset"] == 9
    assert secret not in out.getvalue()


@pytest.mark.parametrize(
    "key", ["api_key", "API_SECRET", "sasl_password", "access_token", "Authorization", "key"]
)
def test_values_of_secret_looking_keys_are_masked(key: str) -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.get_logger("t").info("connect", **{key: "visible-value-123"})
    assert _lines(out)[0][key] == MASK
    assert "visible-value-123" not in out.getvalue()


def test_registered_secret_is_masked_anywhere_in_a_line() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    secret = _secret()
    register_secret(SecretStr(secret))
    log = structlog.get_logger("t")
    log.info(
        f"signing with {secret}",
        url=f"https://x/api?signature=1&k={secret}",
        nested={"headers": {"X-MBX-APIKEY": secret, "ok": "fine"}, "list": [secret]},
        raw=secret.encode(),
    )
    text = out.getvalue()
    assert secret not in text
    (line,) = _lines(out)
    assert line["event"] == f"signing with {MASK}"
    assert line["url"].endswith(f"k={MASK}")
    assert line["nested"]["headers"] == {"X-MBX-APIKEY": MASK, "ok": "fine"}
    assert line["nested"]["list"] == [MASK]


def test_secret_in_an_exception_traceback_is_masked() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    secret = _secret()
    register_secret(secret)
    try:
        raise ValueError(f"bad signature for secret {secret}")
    except ValueError:
        structlog.get_logger("t").exception("request failed")
        logging.getLogger("faust").exception("agent crashed")
    assert secret not in out.getvalue()
    ours, theirs = _lines(out)
    assert "ValueError: bad signature for secret ***" in ours["exception"]
    assert "ValueError: bad signature for secret ***" in theirs["exception"]


def test_unregistered_values_and_ordinary_keys_are_untouched() -> None:
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.get_logger("t").info("fill", instrument="BINANCE:BTCUSDT", qty="0.01", price=7)
    line = _lines(out)[0]
    assert (line["instrument"], line["qty"], line["price"]) == ("BINANCE:BTCUSDT", "0.01", 7)


def test_register_secrets_from_settings_masks_api_credentials() -> None:
    key, secret = _secret(), _secret()
    settings = load_settings(env={"ALGOSTREAM_API_KEY": key, "ALGOSTREAM_API_SECRET": secret})
    assert register_secrets_from(settings) == 2
    out = io.StringIO()
    configure_logging(stream=out)
    structlog.get_logger("t").info("request", query=f"apiKey={key}&secret={secret}")
    assert _lines(out)[0]["query"] == f"apiKey={MASK}&secret={MASK}"


def test_empty_secret_is_not_registered() -> None:
    before = set(obs_logging._secrets)
    register_secret("")
    register_secret(None)
    assert obs_logging._secrets == before


def test_invalid_log_format_names_the_value() -> None:
    with pytest.raises(LoggingConfigError, match="'xml'"):
        configure_logging(log_format="xml", stream=io.StringIO())  # type: ignore[arg-type]
    with pytest.raises(LoggingConfigError, match="'LOUD'"):
        configure_logging(level="LOUD", stream=io.StringIO())


def test_faust_dict_config_keeps_lines_structured_and_masked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="json", stream=io.StringIO())
    secret = _secret()
    register_secret(secret)
    # what mode/faust's Worker does at start-up: replace the root handlers via dictConfig
    logging.config.dictConfig(faust_logging_config(log_format="json", level="INFO"))
    logging.getLogger("mode.worker").info("starting with %s", secret)
    structlog.get_logger("algostream.streams").info("agent ready", agent="market")
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == [f"starting with {MASK}", "agent ready"]
    assert lines[1]["agent"] == "market"
    assert secret not in out
