"""The docstring examples of the modules issue 26 added run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "algostream.signals.multi",
    "algostream.notify",
    "algostream.observability.strategies",
    "algostream.config",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_pass(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0
