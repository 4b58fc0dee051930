"""Database work from async code, off the thread that sync code shares.

`sync_to_async(func, thread_sensitive=False)` runs `func` on the event loop's thread pool,
so many concurrent runs and streams do not queue behind one another in one thread. A
connection opened on such a thread would stay with it; with a connection pool (PostgreSQL,
settings' `DB_POOL`) that slot is lost to the pool for as long as the thread lives, and
for good when the thread ends with its loop (a Celery task's loop, a test server's).
`db_sync_to_async` gives the connection back to the pool once `func` returns. Without a
pool (SQLite) the thread keeps its connection for its next call, as before.
"""

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import connections

P = ParamSpec("P")
T = TypeVar("T")


def release_pooled_connections() -> None:
    """Give this thread's pooled connections back to their pool (others are kept)."""
    for conn in connections.all(initialized_only=True):
        pooled = conn.settings_dict["OPTIONS"].get("pool")
        if pooled and conn.connection is not None and not conn.in_atomic_block:
            conn.close()


def db_sync_to_async(func: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """`func` on the loop's thread pool, its pooled connection released afterwards."""

    @functools.wraps(func)
    def run(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return func(*args, **kwargs)
        finally:
            release_pooled_connections()

    return sync_to_async(run, thread_sensitive=False)
