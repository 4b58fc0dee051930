"""Publishing run events through the Redis channel layer when many runs publish at once
(production profile): a publish waits for a free connection instead of failing."""

import asyncio
import logging
import uuid

import pytest
from django.conf import settings

from apps.conversations import eventlog

pytestmark = pytest.mark.skipif(
    not settings.REDIS_URL, reason="needs the Redis channel layer (REDIS_URL)"
)


def _publish_many(count: int) -> None:
    async def main() -> None:
        ids = [str(uuid.uuid4()) for _ in range(20)]
        await asyncio.gather(
            *(
                eventlog._send_remote(ids[i % len(ids)], [{"event": {"n": i}, "prev": i}])
                for i in range(count)
            )
        )

    asyncio.run(main())


def test_many_concurrent_publishes_none_fails(caplog):
    """More publishes at once than the Redis client's pool has connections (100)."""
    with caplog.at_level(logging.WARNING, logger="apps.conversations.eventlog"):
        _publish_many(400)
    failed = [r for r in caplog.records if "publish failed" in r.getMessage()]
    assert failed == []


def test_without_the_bound_publishes_would_fail(caplog, monkeypatch):
    """The same load unbounded loses publishes: what the bound is for."""
    monkeypatch.setattr(eventlog, "PUBLISH_CONCURRENCY", 10_000)
    with caplog.at_level(logging.WARNING, logger="apps.conversations.eventlog"):
        _publish_many(400)
    assert any("publish failed" in r.getMessage() for r in caplog.records)
