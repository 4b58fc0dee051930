"""Production profile. Refuses to start with an unsafe configuration."""

from django.core.exceptions import ImproperlyConfigured

from .base import *
from .base import ALLOWED_HOSTS, DEBUG, SECRET_KEY, env

_DEFAULT_SECRETS = {"", "insecure-dev-key-change-me", "change-me", "secret"}


def _refuse(reason: str) -> None:
    raise ImproperlyConfigured(f"Refusing to start in production: {reason}")


if SECRET_KEY in _DEFAULT_SECRETS or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    _refuse("SECRET_KEY is missing, a default, shorter than 50 characters or not random.")
if DEBUG:
    _refuse("DEBUG must be False.")
if not ALLOWED_HOSTS:
    _refuse("ALLOWED_HOSTS is empty.")

LOG_JSON = env.bool("LOG_JSON", default=True)
LOGGING["handlers"]["console"]["formatter"] = "json" if LOG_JSON else "plain"  # type: ignore[index]

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
X_FRAME_OPTIONS = "DENY"
