"""Checking a SIGNED Binance request as Binance does (HMAC-SHA256 keys).

Parameters may travel in the query string, in an ``application/x-www-form-urlencoded``
body, or in both; the signature is the hex HMAC-SHA256 (either case) of ``totalParams``,
the query string concatenated with the body (no ``&`` between), with the ``signature``
parameter itself left out wherever it was sent. A parameter sent in both places takes
the query string's value. These are the examples of Binance's "SIGNED Endpoint
Examples for POST /api/v3/order" (key ``NhqP...Tj0j``):

>>> secret = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
>>> query = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
>>> body = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
>>> expected_signature(secret, query, body)
'0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77'
>>> expected_signature(secret, "", query + "&" + body)
'c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71'
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl

from algostream.sim.binance_errors import ApiError, int_param

_BAD_SIGNATURE = ApiError(400, -1022, "Signature for this request is not valid.")
MAX_RECV_WINDOW_MS = 60_000
#: Binance refuses a timestamp more than this far ahead of its clock.
AHEAD_LIMIT_MS = 1000


def _without_signature(raw: str) -> tuple[str, str | None]:
    """``raw`` with its ``signature=`` part removed, and that signature (if any)."""
    kept, found = [], None
    for part in raw.split("&"):
        if part.startswith("signature="):
            found = part[len("signature=") :]
        elif part:
            kept.append(part)
    return "&".join(kept), found


def expected_signature(secret: str, query: str, body: str) -> str:
    """The hex signature Binance expects for ``query`` + ``body`` (signature left out)."""
    payload = _without_signature(query)[0] + _without_signature(body)[0]
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def check_api_key(headers: Mapping[str, str], api_key: str) -> None:
    """-2014 when ``X-MBX-APIKEY`` is missing or not a printable token, -2015 when unknown."""
    given = headers.get("X-MBX-APIKEY", "")
    if not given or len(given) > 128 or not given.isprintable() or " " in given:
        raise ApiError(401, -2014, "API-key format invalid.")
    if not hmac.compare_digest(given.encode(), api_key.encode()):
        raise ApiError(401, -2015, "Invalid API-key, IP, or permissions for action.")


def verify_signature(secret: str, query: str, body: str) -> dict[str, str]:
    """The request's parameters if its signature is right, else -1022 (-1102 if absent)."""
    query_sig = _without_signature(query)[1]
    body_sig = _without_signature(body)[1]
    given = query_sig if query_sig is not None else body_sig
    if not given:
        raise ApiError(
            400,
            -1102,
            "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
        )
    want = expected_signature(secret, query, body)
    if not hmac.compare_digest(given.lower().encode(), want.encode()):
        raise _BAD_SIGNATURE
    params = dict(parse_qsl(body, keep_blank_values=True))
    params.update(parse_qsl(query, keep_blank_values=True))
    params.pop("signature", None)
    return params


def check_timestamp(params: Mapping[str, str], server_ms: int) -> None:
    """-1021 ahead of the server by 1 s or older than ``recvWindow``; -1131 bad window."""
    stamp = int_param(params, "timestamp")
    raw_window = params.get("recvWindow", "5000")
    window = int(raw_window) if raw_window.isdigit() else -1
    if not 0 < window <= MAX_RECV_WINDOW_MS:
        raise ApiError(400, -1131, "recvWindow must be less than 60000")
    if stamp >= server_ms + AHEAD_LIMIT_MS:
        raise ApiError(
            400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
        )
    if server_ms - stamp > window:
        raise ApiError(400, -1021, "Timestamp for this request is outside of the recvWindow.")
