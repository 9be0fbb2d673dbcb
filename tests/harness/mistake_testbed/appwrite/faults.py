"""Fault injection: latency, 5xx and 429 answers for a share of requests, a route pattern or a time window.

Decisions use a seeded `random.Random`, so a test that fixes the seed sees the same faults on every run.
"""

from __future__ import annotations

import random
import re
import threading
import time
from dataclasses import dataclass, field

from .errors import AppwriteError


@dataclass
class Fault:
    """One rule. `kind` is "latency" (delay, then serve), "error" (status/type) or "rate_limit" (429)."""

    kind: str
    share: float = 1.0
    route: str | None = None  # regex searched in "METHOD /v1/path"
    status: int = 503
    latency: float = 0.0
    start: float = 0.0  # seconds after the rule was added
    duration: float | None = None  # None: until removed
    count: int | None = None  # stop after this many hits
    hits: int = 0
    added_at: float = field(default_factory=time.monotonic)
    id: int = 0

    def active(self, now: float) -> bool:
        elapsed = now - self.added_at
        if elapsed < self.start:
            return False
        if self.duration is not None and elapsed >= self.start + self.duration:
            return False
        return self.count is None or self.hits < self.count


def error_for(fault: Fault) -> AppwriteError:
    if fault.kind == "rate_limit":
        reset = int(time.time()) + 60
        return AppwriteError(
            429,
            "general_rate_limit_exceeded",
            "Rate limit for the current endpoint has been exceeded. Please try again after some time.",
            headers={"X-RateLimit-Limit": "60", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)},
        )
    if fault.status == 503:
        return AppwriteError(503, "general_server_error", "Service unavailable, please retry.")
    return AppwriteError(fault.status, "general_unknown", "Server Error")


class FaultPlan:
    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[Fault] = []
        self._next_id = 1
        self.seed(seed)

    def seed(self, seed: int) -> None:
        with self._lock:
            self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            fault.id = self._next_id
            fault.added_at = time.monotonic()
            self._next_id += 1
            self._rules.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r.id != fault.id]

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def decide(self, method: str, path: str) -> tuple[float, AppwriteError | None]:
        """(seconds to delay, error to answer with or None) for one request."""
        target = f"{method} {path}"
        delay, error = 0.0, None
        now = time.monotonic()
        with self._lock:
            for rule in self._rules:
                if not rule.active(now) or (rule.route and not re.search(rule.route, target)):
                    continue
                if rule.share < 1.0 and self._random.random() >= rule.share:
                    continue
                rule.hits += 1
                if rule.kind == "latency":
                    delay += rule.latency
                elif error is None:
                    error = error_for(rule)
        return delay, error
