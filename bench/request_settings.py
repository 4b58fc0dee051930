"""Settings of the server `bench/request_bench.py` starts: the ordinary settings (the
profile chosen by DATABASE_URL / REDIS_URL, as in production), DEBUG off, and a URLconf
that adds the bench's baseline views next to the platform's. Never used outside the bench."""

from config.settings.base import *  # noqa: F403

DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "bench.request_urls"
# The bench measures the request path, not the budget: no request is ever refused.
RATE_LIMITS = dict.fromkeys(RATE_LIMITS, "100000000/min")  # noqa: F405
LOGGING["root"]["level"] = "WARNING"  # type: ignore[index]  # noqa: F405
