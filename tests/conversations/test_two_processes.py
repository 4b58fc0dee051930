"""Resume across two server processes (production profile: PostgreSQL + Redis): a run
executing in one process is streamed live by another and resumed on either, exactly once
and in order."""

import os
import socket
import subprocess
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from django.conf import settings
from django.db import connection

from apps.conversations.models import Run
from apps.providers.scripted import Reply
from tests.conversations.conftest import read_sse, wait_for
from tests.users.factories import make_api_key

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (settings.DATABASE_IS_POSTGRES and settings.REDIS_URL),
        reason="needs the production profile (DATABASE_URL=postgres..., REDIS_URL)",
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _database_url() -> str:
    """DATABASE_URL pointing at the test database this session created."""
    parts = urlsplit(os.environ["DATABASE_URL"])
    return urlunsplit(parts._replace(path="/" + connection.settings_dict["NAME"]))


def _start(kind: str, port: int, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "OUTBOUND_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PROVIDER_RETRY_BASE_DELAY": "0.01",
    }
    if kind == "daphne":
        cmd = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ]
    else:
        cmd = [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1"]
        cmd += ["--port", str(port), "--lifespan", "off", "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, cwd=str(settings.BASE_DIR), stdout=log, stderr=log)


@pytest.fixture
def two_servers(transactional_db, tmp_path):
    ports = [_free_port(), _free_port()]
    log = open(tmp_path / "servers.log", "w+b")  # noqa: SIM115
    procs = [_start("uvicorn", ports[0], log), _start("daphne", ports[1], log)]
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    try:
        for url, proc in zip(urls, procs, strict=True):
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "a server exited"
                try:
                    httpx.get(url + "/api/health", timeout=2)
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "server did not start"
                    time.sleep(0.2)
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        log.seek(0)
        sys.stderr.write(log.read().decode(errors="replace")[-5000:])
        log.close()


def test_resume_across_two_processes_exactly_once(
    two_servers, user, workspace, chat_agent, scripted_llm
):
    _, key = make_api_key(user=user, workspace=workspace)
    headers = {"Authorization": f"Bearer {key}"}
    a = httpx.Client(base_url=two_servers[0], headers=headers, timeout=30)
    b = httpx.Client(base_url=two_servers[1], headers=headers, timeout=30)
    words = " ".join(f"t{i}" for i in range(60))
    scripted_llm.push(Reply(text=words, token_delay=0.03), "Title")
    created = a.post("/api/v1/conversations", json={"agent_id": "helper"})
    assert created.status_code == 201, created.text
    conv = created.json()["data"]["id"]

    # B subscribes first (live relay from A through Redis), A executes the run.
    with b.stream("GET", f"/api/v1/conversations/{conv}/stream") as live_b:
        run = a.post(f"/api/v1/conversations/{conv}/messages", json={"content": "go"}).json()[
            "data"
        ]
        part1 = read_sse(live_b, stop_type=None, limit=15)
    assert Run.objects.get(id=run["id"]).status == "running"
    # Resume on A, mid-run, from the last cursor B delivered.
    with a.stream(
        "GET",
        f"/api/v1/runs/{run['id']}/stream",
        headers={"Last-Event-ID": str(part1[-1]["cursor"])},
    ) as resumed:
        part2 = read_sse(resumed)
    wait_for(lambda: Run.objects.get(id=run["id"]).status == "completed")
    whole = read_sse(b.get(f"/api/v1/runs/{run['id']}/stream?cursor=-1"))

    assert [e["cursor"] for e in part1 + part2] == [e["cursor"] for e in whole]
    assert part1 + part2 == whole
    assert "".join(e["data"]["delta"] for e in whole if e["type"] == "answer.delta") == words
    a.close()
    b.close()
