"""The docstring examples of the execution modules run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "binance_client",
    "futures",
    "futures_paper",
    "list_emulation",
    "order_lists",
    "orders",
    "paper",
    "retry",
    "usdm_client",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    module = importlib.import_module(f"algostream.execution.{name}")
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
