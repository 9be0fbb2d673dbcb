"""Fault rules: what goes wrong, for which requests, and how often.

A rule matches a request by endpoint, by a substring of the prompt / a sample marker / an image sha256, by a
seeded probability, for at most `times` requests, and inside a time window. Rules come from the Python API,
the admin endpoint, or a per-request `x-testbed-fault` header (e.g. `rate_limit;retry_after=2`).
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args

FaultKind = Literal[
    "latency",  # delay the answer (fixed, uniform or exponential); combines with any other fault
    "rate_limit",  # 429 with Retry-After / retry-after-ms
    "http_error",  # any status (default 500; 503 for "overloaded")
    "timeout",  # hold the connection open without answering until the client gives up
    "malformed_json",  # 200 with content that is not valid JSON
    "schema_violation",  # 200 with valid JSON that breaks the requested schema
    "refusal",  # message.refusal set, content null
    "truncated",  # finish_reason "length", content cut mid-JSON
    "content_filter",  # finish_reason "content_filter", content null
]
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
Distribution = Literal["fixed", "uniform", "exponential"]

FAULT_HEADER = "x-testbed-fault"
_ids = itertools.count(1)


@dataclass
class FaultRule:
    kind: FaultKind
    # --- which requests -------------------------------------------------------------------------------------
    match: str | None = None
    """Substring of the prompt text, a sample marker (name), an image sha256 or the model name."""
    endpoint: Literal["chat", "responses"] | None = None
    probability: float = 1.0
    times: int | None = None
    """Apply to at most this many matching requests, then stop matching (the rule stays listed)."""
    start_after: float = 0.0
    """Seconds after the rule was added before it becomes active."""
    duration: float | None = None
    """Seconds the rule stays active once started (None: forever)."""
    # --- what happens ----------------------------------------------------------------------------------------
    status: int = 500
    retry_after: float | None = None
    """Seconds, sent as `Retry-After` (429, and any other status if set)."""
    retry_after_ms: int | None = None
    should_retry: bool | None = None
    """Sent as `x-should-retry`, which overrides the SDK's own retry decision."""
    delay: float = 0.0
    """Latency in seconds (mean for exponential); for `timeout` how long to hold the connection."""
    delay_max: float | None = None
    distribution: Distribution = "fixed"
    message: str | None = None
    # --- bookkeeping ------------------------------------------------------------------------------------------
    id: str = field(default_factory=lambda: f"fault-{next(_ids)}")
    hits: int = 0
    created: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.kind == "rate_limit" and self.status == 500:
            self.status = 429

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("created")
        data["active"] = self.active(time.monotonic())
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)} - {"hits", "created"}
        unknown = set(data) - known - {"active"}
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        return cls(**{k: v for k, v in data.items() if k in known})

    def active(self, now: float) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        started = now - self.created
        if started < self.start_after:
            return False
        return self.duration is None or started < self.start_after + self.duration

    def pick_delay(self, rng: random.Random) -> float:
        if self.distribution == "uniform":
            return rng.uniform(self.delay, self.delay_max if self.delay_max is not None else self.delay)
        if self.distribution == "exponential":
            value = rng.expovariate(1 / self.delay) if self.delay > 0 else 0.0
            return min(value, self.delay_max) if self.delay_max is not None else value
        return self.delay


@dataclass(frozen=True)
class RequestFacts:
    """What a fault rule can match on."""

    endpoint: str
    model: str
    text: str
    markers: tuple[str, ...] = ()
    sha256s: tuple[str, ...] = ()

    def matches(self, needle: str | None) -> bool:
        if needle is None:
            return True
        return needle in self.text or needle in self.markers or needle in self.sha256s or needle == self.model


def parse_fault_header(value: str) -> list[FaultRule]:
    """`kind;key=value;...` rules separated by commas, e.g. `latency;delay=0.2, http_error;status=503`."""
    rules: list[FaultRule] = []
    for spec in value.split(","):
        parts = [p.strip() for p in spec.split(";") if p.strip()]
        if not parts:
            continue
        params: dict[str, Any] = {}
        for part in parts[1:]:
            key, _, raw = part.partition("=")
            params[key.strip().replace("-", "_")] = _coerce(raw.strip())
        rules.append(FaultRule.from_json({"kind": parts[0], **params}))
    return rules


def _coerce(raw: str) -> Any:
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw


class FaultBook:
    """The live rule set; thread-safe because tests change it while the server thread reads it."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._seed = seed
        self._rng = random.Random(seed)

    def add(self, rule: FaultRule | None = None, /, **kwargs: Any) -> FaultRule:
        if rule is None:
            rule = FaultRule(**kwargs)
        elif kwargs:
            raise TypeError("pass either a FaultRule or keyword arguments")
        with self._lock:
            rule.created = time.monotonic()
            self._rules.append(rule)
        return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [r for r in self._rules if r.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()
            # Re-seeding makes "a share of requests" pick the same requests in every test.
            self._rng = random.Random(self._seed)

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def select(self, facts: RequestFacts, extra: Sequence[FaultRule] = ()) -> tuple[float, FaultRule | None]:
        """(total injected latency, the deciding non-latency fault) for one request; counts the hits."""
        delay = 0.0
        decisive: FaultRule | None = None
        now = time.monotonic()
        with self._lock:
            for rule in [*extra, *self._rules]:
                if rule.endpoint is not None and rule.endpoint != facts.endpoint:
                    continue
                if not rule.active(now) or not facts.matches(rule.match):
                    continue
                if rule.kind != "latency" and decisive is not None:
                    continue
                if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                    continue
                rule.hits += 1
                if rule.kind == "latency":
                    delay += rule.pick_delay(self._rng)
                else:
                    decisive = rule
        return delay, decisive
