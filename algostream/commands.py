"""Runtime commands (sim, ingest, worker, control, demo, ...) registered on the CLI."""

from __future__ import annotations
