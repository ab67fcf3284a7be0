"""Backtests: replay history (Kafka topics or a capture file) through the same processors
as the live pipeline, and report the result (metrics, plots, a self-contained HTML page).

Modules: ``source`` (read topics back by time range), ``capture`` (the ``.jsonl.gz``
capture format and the recorded Binance capture loader), ``engine`` (drive the
processors with a simulated clock) and ``report`` (metrics, PNG, HTML).
"""
