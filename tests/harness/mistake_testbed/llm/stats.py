"""What the server saw: one record per API request, in-flight and peak concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class RequestRecord:
    id: str
    method: str
    path: str
    arrival: float
    """time.monotonic() when the handler got the request (same clock in the test process when in-thread)."""
    arrival_wall: float
    """time.time() at arrival, for out-of-process readers."""
    start: float | None = None
    """When the answer started being built, i.e. after injected latency."""
    end: float | None = None
    status: int | None = None
    """HTTP status sent; None while in flight or when the client went away first."""
    retry_count: int | None = None
    """The SDK's `x-stainless-retry-count` header (0 on the first attempt)."""
    model: str | None = None
    endpoint: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    image_count: int = 0
    image_pixels: int = 0
    markers: list[str] = field(default_factory=list)
    fixture: str | None = None
    fault: str | None = None
    finish_reason: str | None = None
    client_gone: bool = False
    generation: int = 0
    """Which `reset()` period the request arrived in; older ones no longer count."""

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.arrival

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Stats:
    """Thread-safe counters.

    `reset()` starts a new period: records, in-flight count and peak start from zero, and requests still in flight
    from before (e.g. connections a `timeout` fault holds for another test) are left out of the new period's figures.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._records: list[RequestRecord] = []
        self._in_flight = 0
        self._peak = 0
        self._seq = 0
        self._generation = 0

    def begin(self, method: str, path: str, retry_count: int | None) -> RequestRecord:
        with self._lock:
            self._seq += 1
            record = RequestRecord(
                id=f"req_{self._seq:08d}",
                method=method,
                path=path,
                arrival=time.monotonic(),
                arrival_wall=time.time(),
                retry_count=retry_count,
                generation=self._generation,
            )
            self._records.append(record)
            self._in_flight += 1
            self._peak = max(self._peak, self._in_flight)
            self._cond.notify_all()
            return record

    def finish(self, record: RequestRecord, status: int | None) -> None:
        with self._lock:
            record.end = time.monotonic()
            record.status = status
            if record.generation == self._generation:
                self._in_flight -= 1
            self._cond.notify_all()

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._records = []
            self._in_flight = 0
            self._peak = 0

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._records)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return self._in_flight

    @property
    def peak_concurrency(self) -> int:
        with self._lock:
            return self._peak

    def wait_for(self, predicate: Callable[[Stats], bool], timeout: float = 10.0) -> bool:
        """Block until `predicate(stats)` is true or the deadline passes (for out-of-loop test threads)."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # The short wait bounds a notify missed between the check and the wait.
            with self._cond:
                self._cond.wait(min(remaining, 0.05))

    def summary(self) -> dict[str, Any]:
        with self._lock:
            done = [r for r in self._records if r.end is not None]
            by_status: dict[str, int] = {}
            for r in done:
                by_status[str(r.status)] = by_status.get(str(r.status), 0) + 1
            return {
                "requests": len(self._records),
                "completed": len(done),
                "in_flight": self._in_flight,
                "peak_concurrency": self._peak,
                "by_status": by_status,
                "prompt_tokens": sum(r.prompt_tokens for r in self._records),
                "completion_tokens": sum(r.completion_tokens for r in self._records),
            }

    def to_json(self, include_requests: bool = True) -> dict[str, Any]:
        data = self.summary()
        if include_requests:
            data["request_log"] = [r.to_json() for r in self.requests]
        return data
