"""The docstring examples of the history modules and of the sweep and report run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "algostream.history",
    "algostream.history.errors",
    "algostream.history.ohlcv",
    "algostream.backtest.sweep",
    "algostream.backtest.report",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
