"""Fixed-window request counters in the cache (Redis in production, so shared by every
process), keyed by the credential that made the request."""

import time
from dataclasses import dataclass
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.redis import RedisCache
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


_redis_clients: dict[str, Any] = {}


def _redis_client() -> Any:
    """One Redis client per process for the cache's server (Django's cache backend builds
    a new client object for every operation), or None when the cache is not Redis."""
    if not isinstance(caches["default"], RedisCache):  # `cache` is only a proxy
        return None
    location = settings.CACHES["default"]["LOCATION"]
    if isinstance(location, list | tuple):  # several servers: the first one is written
        location = location[0]
    client = _redis_clients.get(location)
    if client is None:
        client = _redis_clients[location] = redis.Redis.from_url(location)
    return client


def _count(key: str, ttl: int) -> int:
    """Add one to the window's counter and return it: on Redis one round trip (create
    the counter with its expiry if absent, then increment), else two in-process calls."""
    client = _redis_client()
    if client is not None:
        full_key = cache.make_and_validate_key(key)
        pipe = client.pipeline(transaction=False)
        pipe.set(full_key, 0, ex=ttl, nx=True)
        pipe.incr(full_key)
        return int(pipe.execute()[1])
    cache.add(key, 0, timeout=ttl)
    try:
        return int(cache.incr(key))
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=ttl)
        return 1


def rate_hit(*, kind: str, ident: str) -> RateState:
    """Count one request for (kind, ident) in the current window and return the state."""
    limit, window = parse_rate(settings.RATE_LIMITS[kind])
    now = int(time.time())
    window_start = now - now % window
    count = _count(f"ratelimit:{kind}:{ident}:{window_start}", window + 1)
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
