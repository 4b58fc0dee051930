"""Database work from async code gives pooled connections back (apps/core/db.py)."""

import asyncio

import pytest
from django.conf import settings
from django.db import connection

from apps.core.db import db_sync_to_async
from apps.users.models import User

pytestmark = pytest.mark.django_db(transaction=True)


def test_settings_pool_postgres_connections_and_keep_sqlite_ones():
    options = connection.settings_dict["OPTIONS"]
    if settings.DATABASE_IS_POSTGRES:
        assert options["pool"]["max_size"] >= options["pool"]["min_size"] >= 1
        assert connection.settings_dict["CONN_MAX_AGE"] == 0  # Django: pools need it
    else:
        assert "pool" not in options


@pytest.mark.skipif(not settings.DATABASE_IS_POSTGRES, reason="only PostgreSQL is pooled")
def test_threads_of_finished_loops_hold_no_pooled_connection():
    """Each asyncio.run is a new loop with new pool threads (as a Celery task's run or a
    test server has): more threads than the pool has connections, which would exhaust it
    if each kept its connection."""

    async def queries() -> None:
        await asyncio.gather(*(db_sync_to_async(User.objects.count)() for _ in range(40)))

    def in_use() -> int:
        stats = connection.pool.get_stats()
        return stats.get("pool_size", 0) - stats.get("pool_available", 0)

    before = in_use()  # what other threads of this process hold (earlier tests' servers)
    for _ in range(connection.pool.max_size // 2 + 2):
        asyncio.run(queries())
    assert in_use() - before <= 1  # this thread's own connection, at most
