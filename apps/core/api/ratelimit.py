"""Fixed-window request counters in the cache (Redis in production, so shared by every
process), keyed by the credential that made the request."""

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

_UNITS = {
    "s": 1,
    "sec": 1,
    "second": 1,
    "m": 60,
    "min": 60,
    "minute": 60,
    "h": 3600,
    "hour": 3600,
    "d": 86400,
    "day": 86400,
}


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset: int  # unix time at which the window ends
    exceeded: bool


def parse_rate(rate: str) -> tuple[int, int]:
    """'600/min' -> (600, 60). Raises ValueError for anything else."""
    count, _, unit = rate.partition("/")
    if unit not in _UNITS:
        raise ValueError(f"Unknown rate unit in {rate!r}")
    return int(count), _UNITS[unit]


def rate_hit(*, kind: str, ident: str) -> RateState:
    """Count one request for (kind, ident) in the current window and return the state."""
    limit, window = parse_rate(settings.RATE_LIMITS[kind])
    now = int(time.time())
    window_start = now - now % window
    key = f"ratelimit:{kind}:{ident}:{window_start}"
    cache.add(key, 0, timeout=window + 1)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window + 1)
        count = 1
    return RateState(
        limit=limit,
        remaining=max(limit - count, 0),
        reset=window_start + window,
        exceeded=count > limit,
    )


def client_address(request: HttpRequest) -> str:
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def anonymous_rate_state(request: HttpRequest) -> RateState:
    return rate_hit(kind="anon", ident=client_address(request))
