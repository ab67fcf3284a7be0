"""Market data, pure logic: exchange frame parsing (Binance, Coinbase), the order book, book
synchronisation, the book stage (tops + integrity) and event-time bars.

Nothing here does I/O or reads a clock: frames, receive times and "now" are passed in.
"""

from algostream.marketdata.bars import BarAggregator, BarResult
from algostream.marketdata.binance import InstrumentSpec
from algostream.marketdata.book import OrderBook
from algostream.marketdata.errors import BookStateError, FrameError, MarketDataError
from algostream.marketdata.frames import BookTicker, FrameKind, Kline, ParsedFrame
from algostream.marketdata.processor import BookProcessor
from algostream.marketdata.sync import BinanceBookSync, CoinbaseSequenceTracker, SyncState

__all__ = [
    "BarAggregator",
    "BarResult",
    "BinanceBookSync",
    "BookProcessor",
    "BookStateError",
    "BookTicker",
    "CoinbaseSequenceTracker",
    "FrameError",
    "FrameKind",
    "InstrumentSpec",
    "Kline",
    "MarketDataError",
    "OrderBook",
    "ParsedFrame",
    "SyncState",
]
