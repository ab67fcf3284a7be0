"""Exchange simulator: Binance- and Coinbase-compatible WebSocket + REST on one port.

A seeded synthetic market (:class:`SimMarket`) or a recorded capture
(:class:`PlaybackSource`) feeds :class:`SimExchange`, served by :class:`SimServer`.

>>> import asyncio
>>> async def demo() -> int:
...     server = SimServer(SimExchange(SimMarket.create(["BTCUSDT"], seed=1), rate=100))
...     port = await server.start()
...     await server.stop()
...     return port
>>> asyncio.run(demo()) > 0
True
"""

from algostream.sim.capture import PlaybackSource, read_http_capture, read_ws_capture
from algostream.sim.errors import CaptureFormatError, SimConfigError, SimError, UnknownSymbolError
from algostream.sim.exchange import SimExchange
from algostream.sim.hub import WsSettings
from algostream.sim.market import BookProvider, MarketEvent, SimMarket, TradeFill
from algostream.sim.server import SimServer, build_app, run_simulator
from algostream.sim.spec import SymbolSpec, default_spec

__all__ = [
    "BookProvider",
    "CaptureFormatError",
    "MarketEvent",
    "PlaybackSource",
    "SimConfigError",
    "SimError",
    "SimExchange",
    "SimMarket",
    "SimServer",
    "SymbolSpec",
    "TradeFill",
    "UnknownSymbolError",
    "WsSettings",
    "build_app",
    "default_spec",
    "read_http_capture",
    "read_ws_capture",
    "run_simulator",
]
