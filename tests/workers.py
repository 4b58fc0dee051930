"""A real worker process on the test database, killed with SIGKILL at a chosen moment:
how the tests show that a job whose worker died is never left stuck. Needs a database
two processes share: `@pytest.mark.django_db(transaction=True)` (a file on SQLite)."""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import connection


def test_database_url() -> str:
    """A DATABASE_URL for the test database pytest-django created (a file on SQLite)."""
    name = connection.settings_dict["NAME"]
    if not settings.DATABASE_IS_POSTGRES:
        return f"sqlite:///{name}"
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + name))


test_database_url.__test__ = False  # type: ignore[attr-defined]  # not a test


def start_worker(
    script: str, args: list[str], env: dict[str, str] | None = None, **popen: Any
) -> subprocess.Popen[Any]:
    """Start `script` (Python, after `django.setup()`, with `args` in sys.argv[1:]) in a
    new process on the test database (`env`: more environment variables, e.g. settings;
    `popen`: Popen's stdin/stdout/... ; stderr is a pipe unless given)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": test_database_url(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1,localhost",
        **(env or {}),
    }
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-c", "import django\ndjango.setup()\n" + script, *args],
        env=env,
        cwd=str(Path(settings.BASE_DIR)),
        **popen,
    )


def run_worker(script: str, args: list[str], *, timeout: float = 60) -> str:
    """Run `script` (see `start_worker`) in a new process on the test database to its
    end; returns what it printed. Raises AssertionError if it fails."""
    worker = start_worker(script, args, stdout=subprocess.PIPE)
    out, err = worker.communicate(timeout=timeout)
    assert worker.returncode == 0, err.decode()[-2000:]
    return out.decode()


def kill_worker_when(
    script: str, args: list[str], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> None:
    """Run `script` (see `start_worker`) in a new process on the test database; SIGKILL
    it as soon as `ready()` is true (polled every 50 ms, 60 s at most). Raises
    AssertionError if the worker exits first."""
    worker = start_worker(script, args, env=env, stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if ready():
                break
            assert worker.poll() is None, worker.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            time.sleep(0.05)
        else:
            raise AssertionError("the worker never reached the point where it is killed")
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == -signal.SIGKILL
