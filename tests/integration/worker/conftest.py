"""Fixtures of the worker's integration tests (the helpers live in worker_bed.py)."""

from worker_bed import bed

__all__ = ["bed"]
