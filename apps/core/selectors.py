"""Reads of the core app: system settings and component health."""

import logging
import uuid
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from celery import current_app
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection

from apps.core.models import SystemSettings

logger = logging.getLogger(__name__)


def system_settings_get() -> SystemSettings:
    """The settings row, created with defaults on first use."""
    settings_row, _ = SystemSettings.objects.get_or_create(pk=1)
    return settings_row


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    ok: bool
    error: str = ""


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check_cache() -> None:
    key = f"health:{uuid.uuid4().hex}"
    cache.set(key, "1", timeout=5)
    if cache.get(key) != "1":
        raise RuntimeError("value written to the cache could not be read back")
    cache.delete(key)


def _check_channel_layer() -> None:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")

    async def roundtrip() -> None:
        channel = await layer.new_channel()
        await layer.send(channel, {"type": "health.ping"})
        message = await layer.receive(channel)
        if message.get("type") != "health.ping":
            raise RuntimeError("channel layer returned another message")

    async_to_sync(roundtrip)()


def _check_broker() -> None:
    with current_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


_CHECKS = {
    "database": _check_database,
    "cache": _check_cache,
    "channel_layer": _check_channel_layer,
    "broker": _check_broker,
}


def health_check() -> list[ComponentHealth]:
    """Probe every component the platform needs; never raises."""
    results = []
    for name, check in _CHECKS.items():
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "down", reported by name
            logger.warning("health check %s failed: %s", name, exc)
            results.append(ComponentHealth(name=name, ok=False, error=type(exc).__name__))
        else:
            results.append(ComponentHealth(name=name, ok=True))
    return results
