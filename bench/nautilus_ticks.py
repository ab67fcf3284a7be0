"""NautilusTrader's BacktestEngine on a trade-tick CSV, for ``bench/bars.py``.

Run with a Python that has ``nautilus_trader`` (it pins pandas < 3, so not the project's
venv): ``python bench/nautilus_ticks.py trades.csv`` prints ``<ticks> <seconds>``: the
CPU time of ``engine.run()`` with its EMACross example strategy (EMA 10/20 on 1-second bars
built from the ticks, market orders of 0.1) on one simulated Binance spot venue.
Standalone: it imports nothing from algostream.
"""

from __future__ import annotations

import sys
import time
from decimal import Decimal

import pandas as pd
from nautilus_trader.backtest.config import BacktestEngineConfig
from nautilus_trader.backtest.engine import BacktestEngine
from nautilus_trader.config import LoggingConfig
from nautilus_trader.examples.strategies.ema_cross import EMACross, EMACrossConfig
from nautilus_trader.model import BarType, Money, TraderId, Venue
from nautilus_trader.model.currencies import ETH, USDT
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.persistence.wranglers import TradeTickDataWrangler
from nautilus_trader.test_kit.providers import TestInstrumentProvider


def main(path: str) -> None:
    frame = pd.read_csv(path)
    frame.index = pd.to_datetime(frame.pop("ts_ns"), unit="ns", utc=True)
    instrument = TestInstrumentProvider.ethusdt_binance()
    ticks = TradeTickDataWrangler(instrument=instrument).process(frame)
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=TraderId("BENCH-001"), logging=LoggingConfig(log_level="ERROR")
        )
    )
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.CASH,
        base_currency=None,
        starting_balances=[Money(1_000_000.0, USDT), Money(10.0, ETH)],
    )
    engine.add_instrument(instrument)
    engine.add_data(ticks)
    bar_type = BarType.from_str(f"{instrument.id}-1-SECOND-LAST-INTERNAL")
    engine.add_strategy(
        EMACross(
            EMACrossConfig(
                instrument_id=instrument.id,
                bar_type=bar_type,
                trade_size=Decimal("0.1"),
                request_bars=False,
            )
        )
    )
    start = time.process_time()
    engine.run()
    seconds = time.process_time() - start
    fills = len(engine.trader.generate_order_fills_report())
    print(len(ticks), seconds, fills)
    engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1])
