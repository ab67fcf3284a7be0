"""Secrets stay secret and credentials reach the clients.

a. API keys come only from the environment or an owner-only file; a group/world-readable
   (or missing) key file is refused with a clear error that does not show the secret.
b. The whole pipeline (simulator, ingestor, three workers, trading **live** against the
   simulator's signed order API) runs with recognisable secrets in its environment; the
   secrets appear in no process log, no ``config show`` output, no bad-config error and
   no record (key, value or header) on any topic, changelogs included.
c. The simulator refuses bad signatures, unknown keys and stale timestamps: covered by
   tests/unit/execution/test_execution_sim_trading.py (``test_tampered_query_fails_
   signature_check``, ``test_wrong_api_key_is_refused``, ``test_timestamp_outside_recv_
   window``); here only what those leave out: unsigned requests and missing key/timestamp.
d. Kafka SASL/TLS settings pass from config to the aiokafka kwargs and to Faust's
   ``broker_credentials``; the SASL password is masked in ``config show``.
e. Neither compose file nor the Grafana provisioning carries a Grafana admin password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import certifi
import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, TopicPartition

from algostream.config import ConfigError, KafkaConfig, load_settings
from algostream.kafka.clients import client_kwargs, faust_credentials
from algostream.model import OrderEvent, OrderStatus
from streams.worker import worker_roles
from tests.kafka_kit import decoded, free_port, read_until

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``algostream <args>`` in a child process; stdout and stderr together."""
    return subprocess.run(
        [sys.executable, "-m", "algostream", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


# --------------------------------------------------------------------------- a. key files


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o610, 0o601])
@pytest.mark.parametrize("name", ["API_KEY", "API_SECRET", "SASL_PASSWORD"])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, name: str, mode: int) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-secret-7f3a\n")
    os.chmod(secret, mode)
    with pytest.raises(ConfigError) as err:
        load_settings(env={f"ALGOSTREAM_{name}_FILE": str(secret)})
    text = str(err.value)
    assert f"ALGOSTREAM_{name}_FILE" in text and "chmod 600" in text, text
    assert "file-secret-7f3a" not in text


@pytest.mark.parametrize("name", ["API_KEY", "API_SECRET", "SASL_PASSWORD"])
def test_owner_only_key_file_is_read(tmp_path: Path, name: str) -> None:
    secret = tmp_path / "secret"
    secret.write_text("file-secret-7f3a\n")
    os.chmod(secret, 0o600)
    s = load_settings(env={f"ALGOSTREAM_{name}_FILE": str(secret)})
    value = s.kafka.sasl_password if name == "SASL_PASSWORD" else getattr(s.execution, name.lower())
    assert value is not None and value.get_secret_value() == "file-secret-7f3a"
    assert "file-secret-7f3a" not in repr(s) + str(s.masked())


def test_missing_key_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ALGOSTREAM_API_SECRET_FILE=.*cannot read"):
        load_settings(env={"ALGOSTREAM_API_SECRET_FILE": str(tmp_path / "nope")})
    with pytest.raises(ConfigError, match=r"ALGOSTREAM_API_KEY_FILE=.*cannot read"):
        load_settings(env={"ALGOSTREAM_API_KEY_FILE": str(tmp_path)})  # a directory


def test_keys_are_not_taken_from_the_config_file_or_override_path(tmp_path: Path) -> None:
    for section, key in (("execution", "api_key"), ("kafka", "sasl_password")):
        cfg = tmp_path / f"{key}.json"
        cfg.write_text(f'{{"{section}": {{"{key}": "in-file-9c1d"}}}}')
        with pytest.raises(ConfigError) as err:
            load_settings(cfg, env={})
        assert key in str(err.value) and "in-file-9c1d" not in str(err.value)
        var = f"ALGOSTREAM__{section.upper()}__{key.upper()}"
        with pytest.raises(ConfigError) as err:
            load_settings(env={var: "in-env-9c1d"})
        assert f"ALGOSTREAM_{key.upper()}" in str(err.value)
        assert "in-env-9c1d" not in str(err.value)


# --------------------------------------------------------------------------- d. kafka auth


def sasl_env(cafile: str) -> dict[str, str]:
    return {
        "ALGOSTREAM__KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "ALGOSTREAM__KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "ALGOSTREAM__KAFKA__SASL_USERNAME": "svc-algostream",
        "ALGOSTREAM__KAFKA__SSL_CAFILE": cafile,
        "ALGOSTREAM_SASL_PASSWORD": "sasl-pw-55e1c0",
    }


def test_sasl_ssl_settings_reach_the_aiokafka_clients() -> None:
    cafile = certifi.where()
    k = load_settings(env=sasl_env(cafile)).kafka
    kwargs = client_kwargs(k)
    assert {key: kwargs[key] for key in kwargs if key != "ssl_context"} == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "algostream",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "svc-algostream",
        "sasl_plain_password": "sasl-pw-55e1c0",
    }
    ctx = kwargs["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode is ssl.CERT_REQUIRED
    # exactly the CA file's certificates are trusted (not the system store)
    assert len(ctx.get_ca_certs()) == Path(cafile).read_text().count("BEGIN CERTIFICATE")


def test_sasl_ssl_settings_reach_the_faust_app(tmp_path: Path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    from streams.app import create_app

    env = sasl_env(certifi.where()) | {"ALGOSTREAM__KAFKA__DATA_DIR": str(tmp_path)}
    settings = load_settings(env=env)
    app, _ = create_app(settings, "security-test")
    creds = app.conf.broker_credentials
    assert creds is not None
    # what Faust hands its aiokafka clients equals what ours get
    faust_auth = credentials_to_aiokafka_auth(creds)
    ours = client_kwargs(settings.kafka)
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username",
                "sasl_plain_password"):  # fmt: skip
        assert faust_auth[key] == ours[key], key
    assert faust_auth["ssl_context"].get_ca_certs() == ours["ssl_context"].get_ca_certs()
    assert "sasl-pw-55e1c0" not in repr(creds)


def test_ssl_only_and_plaintext_credentials() -> None:
    from faust.auth import SSLCredentials
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    ssl_only = KafkaConfig(security_protocol="SSL", ssl_cafile=certifi.where())
    creds = faust_credentials(ssl_only)
    assert isinstance(creds, SSLCredentials)
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"
    assert "sasl_mechanism" not in client_kwargs(ssl_only)
    assert faust_credentials(KafkaConfig()) is None
    assert client_kwargs(KafkaConfig())["security_protocol"] == "PLAINTEXT"
    sasl_plain = KafkaConfig(security_protocol="SASL_PLAINTEXT", sasl_username="u")
    auth = credentials_to_aiokafka_auth(faust_credentials(sasl_plain))
    assert (auth["security_protocol"], auth["sasl_mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")
    assert client_kwargs(sasl_plain)["sasl_mechanism"] == "PLAIN"


def test_unknown_sasl_mechanism_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"kafka\.sasl_mechanism"):
        load_settings(env={"ALGOSTREAM__KAFKA__SASL_MECHANISM": "ROT13"})


def test_config_show_masks_the_sasl_password() -> None:
    done = cli("config", "show", env=sasl_env(certifi.where()))
    assert done.returncode == 0, done.stderr
    assert "sasl-pw-55e1c0" not in done.stdout + done.stderr
    assert '"sasl_password": "***"' in done.stdout
    assert '"sasl_username": "svc-algostream"' in done.stdout


# --------------------------------------------------------------------------- c. signatures


async def test_unsigned_or_keyless_requests_are_refused() -> None:
    from algostream.sim.exchange import SimExchange
    from algostream.sim.market import SimMarket
    from algostream.sim.server import SimServer
    from algostream.sim.trading import trading_setup

    key, secret = "k-sec-test", "s-sec-test-0a9b"
    server = SimServer(
        SimExchange(SimMarket.create(["BTCUSDT"], seed=1), rate=0),
        setup=[trading_setup(key, secret)],
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.http_url) as http:
            ts = str(int(time.time() * 1000))
            query = urlencode({"timestamp": ts})
            sig = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
            signed = f"/api/v3/account?{query}&signature={sig}"
            ok = await http.get(signed, headers={"X-MBX-APIKEY": key})
            assert ok.status_code == 200, ok.text
            unsigned = await http.get(f"/api/v3/account?{query}", headers={"X-MBX-APIKEY": key})
            keyless = await http.get(signed)
            no_ts_sig = hmac.new(secret.encode(), b"recvWindow=5000", hashlib.sha256).hexdigest()
            no_ts = await http.get(
                f"/api/v3/account?recvWindow=5000&signature={no_ts_sig}",
                headers={"X-MBX-APIKEY": key},
            )
            for resp in (unsigned, keyless, no_ts):
                assert resp.status_code in (400, 401), resp.text
                assert resp.json()["code"] < 0, resp.text
            assert secret not in unsigned.text + keyless.text + no_ts.text
    finally:
        await server.stop()


# --------------------------------------------------------------------------- e. grafana


class ComposeLoader(yaml.SafeLoader):
    """SafeLoader that reads compose's own tags (``!reset``, ``!override``) as null."""


ComposeLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def test_no_default_grafana_admin_password() -> None:
    """The compose files demand GRAFANA_ADMIN_PASSWORD (``${VAR:?...}``, no ``:-`` default);
    the Grafana provisioning holds no password at all. (With a docker compose CLI,
    tests/unit/observability/test_observability_compose.py also checks that compose
    refuses to resolve without it.)"""
    composes = sorted(REPO.glob("docker-compose*.yml"))
    assert composes
    found = 0
    for path in composes:
        data = yaml.load(path.read_text(), Loader=ComposeLoader)
        for name, service in (data.get("services") or {}).items():
            env = service.get("environment") or {}
            if isinstance(env, list):
                env = dict(item.split("=", 1) for item in env)
            for var, value in env.items():
                if re.search(r"PASSWORD|SECRET|TOKEN", var):
                    found += var == "GF_SECURITY_ADMIN_PASSWORD"
                    assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), (path, name, var)
        assert "GF_SECURITY_ADMIN_PASSWORD=" not in path.read_text()
    assert found == 1  # grafana, in docker-compose.yml (the override does not redefine it)
    for path in (REPO / "grafana").rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".yaml", ".json", ".ini"):
            text = path.read_text().lower()
            assert not re.search(r"(admin_)?password\s*[:=]", text), path


# --------------------------------------------------------------------------- b. grep


async def all_records(settings: Any, prefixes: tuple[str, ...]) -> list[bytes]:
    """Key, value and headers of every record on every topic whose name starts with one
    of ``prefixes`` (the catalog topics and the workers' changelogs), read to the end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    out: list[bytes] = []
    try:
        names = sorted(t for t in await consumer.topics() if t.startswith(prefixes))
        await consumer._client.force_metadata_update()
        cluster = consumer._client.cluster
        tps = [TopicPartition(t, p) for t in names for p in cluster.partitions_for_topic(t) or ()]
        assert {tp.topic for tp in tps} == set(names), names
        consumer.assign(tps)
        await consumer.seek_to_beginning()
        end = await consumer.end_offsets(tps)
        deadline = time.monotonic() + 120
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            assert time.monotonic() < deadline, "could not read every topic to its end"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    out.append(b"%s\x00%s\x00%r" % (r.key or b"", r.value or b"", r.headers))
        assert len(names) >= 19, names  # the catalog's topics at least
        return out
    finally:
        await consumer.stop()


async def test_secrets_appear_nowhere(provisioned, supervisor, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    s = provisioned
    tag = uuid.uuid4().hex[:12]
    key, secret, sasl = f"KEYzz{tag}", f"SECRETzz{tag}", f"SASLzz{tag}"
    secrets = (key, secret, sasl, tag)
    port = free_port()
    creds = {"ALGOSTREAM_API_KEY": key, "ALGOSTREAM_API_SECRET": secret}
    env = creds | {
        # the SASL password is configured (PLAINTEXT ignores it) so it is loaded and masked
        "ALGOSTREAM_SASL_PASSWORD": sasl,
        "ALGOSTREAM__MARKET_DATA__WEBSOCKET_URL": f"ws://127.0.0.1:{port}/stream",
        "ALGOSTREAM__MARKET_DATA__REST_URL": f"http://127.0.0.1:{port}",
        "ALGOSTREAM__MARKET_DATA__RECONNECT_DELAY_MS": "200",
        "ALGOSTREAM__EXECUTION__PAPER_TRADING": "false",
        "ALGOSTREAM__EXECUTION__EXCHANGE_API_URL": f"http://127.0.0.1:{port}",
        "ALGOSTREAM__OBSERVABILITY__LOG_LEVEL": "DEBUG",  # the most talkative logs
        "ALGOSTREAM__SIGNAL__RSI_WINDOW": "2",
        "ALGOSTREAM__SIGNAL__RSI_OVERSOLD": "45",
        "ALGOSTREAM__SIGNAL__RSI_OVERBOUGHT": "55",
    }
    supervisor.start("sim", "sim", "--port", str(port), "--rate", "100", env=env)
    supervisor.start("ingest", "ingest", "--metrics-port", "0", env=env)
    for role in worker_roles(s):
        supervisor.start(role, "worker", role, "--web-port", "0", "--metrics-port", "0", env=env)

    def live_fill(msgs) -> bool:  # type: ignore[no-untyped-def]
        return any(
            e.status is OrderStatus.FILLED and e.venue == "BINANCE"  # type: ignore[attr-defined]
            for e in decoded(msgs, OrderEvent)
        )

    events = await read_until(s, "orders.events", live_fill, timeout_s=240)
    logs = {n: supervisor.tail(n, 20) for n in supervisor.children}
    assert live_fill(events), logs  # signed orders went to the venue: the keys were used
    assert not supervisor.dead(), logs
    supervisor.stop_all()  # shutdown lines are in the logs too

    texts: dict[str, str] = {}
    for child in supervisor.children.values():
        texts[f"log:{child.name}"] = child.log.read_text(errors="replace")
    assert all(texts.values()), "a process wrote no log at all"
    shown = cli("config", "show", env=env)
    assert shown.returncode == 0 and '"api_secret": "***"' in shown.stdout
    texts["config show"] = shown.stdout + shown.stderr
    # bad configurations: the error text names keys, never the secret values
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(f'{{"execution": {{"api_secret": "{secret}"}}}}')
    readable = tmp_path / "readable-secret"
    readable.write_text(secret)
    os.chmod(readable, 0o644)
    bad_runs = {
        "bad value": env | {"ALGOSTREAM__RISK__MAX_OPEN_POSITIONS": "many"},
        "secret via override": env | {"ALGOSTREAM__EXECUTION__API_SECRET": secret},
        "secret in file": env | {"ALGOSTREAM_CONFIG": str(bad_file)},
        "readable secret file": {k: v for k, v in env.items() if k != "ALGOSTREAM_API_SECRET"}
        | {"ALGOSTREAM_API_SECRET_FILE": str(readable)},
        "bad key type": env | {"ALGOSTREAM__EXECUTION__RECV_WINDOW_MS": secret},
    }
    for name, bad_env in bad_runs.items():
        for args in (("config", "show"), ("worker", "trading", "--web-port", "0")):
            done = cli(*args, env=bad_env)
            assert done.returncode != 0, (name, args, done.stdout[-500:])
            assert "config error" in done.stdout + done.stderr, (name, done.stdout[-500:])
            texts[f"{name}: {' '.join(args)}"] = done.stdout + done.stderr
    records = await all_records(s, (s.kafka.topic_prefix, s.kafka.app_id))
    assert len(records) > 100
    texts["topics"] = "\n".join(r.decode("utf-8", "backslashreplace") for r in records)

    leaks = {where: [x for x in secrets if x in text] for where, text in texts.items()}
    assert not any(leaks.values()), {w: found for w, found in leaks.items() if found}
