"""The docstring examples of the marketdata modules run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["binance", "binance_usdm", "coinbase", "book", "sync", "usdm_sync", "bars"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(f"algostream.marketdata.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
