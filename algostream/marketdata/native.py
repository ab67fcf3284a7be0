"""The book stage's compiled hot path, if it is built (issue 27 item 2).

``algostream/marketdata/_fastbook.pyx`` (Cython, built by ``pip install -e .`` through
``setup.py``, or in place by ``python setup.py build_ext --inplace``) takes the plain case
of the book stage, a DELTA on a synced book, from the ``md.book`` payload's bytes to the
``book.top`` record's bytes and the book-state writes, and hands everything else back to
:class:`~algostream.marketdata.processor.BookProcessor`, which stays the one definition of
what the outputs are (``tests/unit/marketdata/test_marketdata_book_equivalence.py`` runs
both paths against the frozen old one, record by record and byte by byte).

Without the extension (not compiled, or ``ALGOSTREAM_PURE_PYTHON=1``) the stage runs the
Python path alone, and says so once in the log.
"""

from __future__ import annotations

import os
from typing import Any

import structlog

log = structlog.get_logger("algostream.marketdata")

#: set to 1 to run the pure-Python book path even where the extension is built
PURE_ENV = "ALGOSTREAM_PURE_PYTHON"

#: ``FastBooks.handle``'s ``record`` for the ``BookTop`` record without the ``book.top``
#: bytes (a backtest keeps the record; an older build takes it as True: bytes and record)
RECORD_ONLY = 2

_loaded: list[Any] = []


def fast_books_type() -> Any:
    """The compiled ``FastBooks`` class, or ``None`` (pure Python; logged once)."""
    if not _loaded:
        _loaded.append(_load())
    return _loaded[0]


def _load() -> Any:
    if os.environ.get(PURE_ENV, "") not in ("", "0"):
        log.info("book stage: pure-Python path", reason=f"{PURE_ENV} is set")
        return None
    try:
        from algostream.marketdata._fastbook import FastBooks
    except ImportError as exc:
        log.warning(
            "book stage: compiled path not available, running the pure-Python path "
            "(build it with `pip install -e .` or `python setup.py build_ext --inplace`)",
            error=str(exc),
        )
        return None
    return FastBooks


def attach(proc: Any, store: Any = None, pending_type: Any = dict, delete: Any = None) -> Any:
    """Give ``proc`` (and its level ``store``) the compiled path; returns it, or ``None``
    when running pure Python."""
    cls = fast_books_type()
    if cls is None:
        return None
    proc.fast = cls(proc, store, pending_type, delete)
    return proc.fast
