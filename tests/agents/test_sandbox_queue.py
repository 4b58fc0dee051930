"""SANDBOX_CELERY_QUEUE with a real Celery worker process: the web side only sends the
execution to the queue and waits on its row; a worker consuming only that queue runs the
sandbox. And with no worker, the call ends `unavailable` and the row `failed`, never stuck
(a worker that turns up later leaves it so)."""

import asyncio
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from celery import current_app

from apps.agents import services
from apps.agents.models import CodeExecution, CodeInterpreterPolicy
from apps.agents.services import code_execution_arun, code_execution_create
from tests.workers import start_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
    # The suite runs tasks eagerly; send_task (what the queue path uses) never is.
    pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored"),
]

WORKER = """
import sys
from config.celery import app
app.worker_main(["worker", "-Q", sys.argv[1], "-P", "solo", "-c", "1", "-l", "INFO",
                 "--without-heartbeat", "--without-mingle", "--without-gossip"])
"""


@pytest.fixture
def queue(settings):
    """A queue of this test's own (nothing else consumes it), set for the web side."""
    name = f"sandbox-test-{uuid.uuid4().hex[:12]}"
    settings.SANDBOX_CELERY_QUEUE = name
    if str(settings.CELERY_BROKER_URL).startswith("filesystem://"):
        for folder in settings.CELERY_BROKER_TRANSPORT_OPTIONS.values():
            Path(folder).mkdir(parents=True, exist_ok=True)
    yield name
    with current_app.connection_for_write() as connection:
        connection.default_channel.queue_purge(name)


@pytest.fixture
def never_here(monkeypatch):
    """Fails the test if this (the web) process runs the sandbox itself."""
    calls: list[object] = []

    def refuse(job):
        calls.append(job)
        raise AssertionError("the web process ran the sandbox")

    monkeypatch.setattr(services, "sandbox_run", refuse)
    return calls


class Worker:
    def __init__(self, queue: str, log: Path) -> None:
        self.log = log
        self.handle = log.open("wb")
        self.process = start_worker(
            WORKER,
            [queue],
            env={"CELERY_TASK_ALWAYS_EAGER": "false"},
            stdout=subprocess.DEVNULL,
            stderr=self.handle,
        )

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.text()
            if needle in text:
                return text
            assert self.process.poll() is None, text[-3000:]
            time.sleep(0.1)
        raise AssertionError(f"the worker never logged {needle!r}:\n{self.text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()


@pytest.fixture
def worker_for(tmp_path):
    started: list[Worker] = []

    def start(queue: str) -> Worker:
        worker = Worker(queue, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


def _execution(workspace, user, code: str) -> CodeExecution:
    return code_execution_create(
        workspace_id=workspace.id,
        user_id=user.id,
        agent_id=None,
        run_id=None,
        conversation_id=None,
        code=code,
    )


def test_an_execution_on_the_sandbox_queue_runs_in_the_worker(
    workspace, user, queue, never_here, worker_for
):
    CodeInterpreterPolicy.objects.create(workspace=workspace, enabled=True, wall_seconds=20)
    worker = worker_for(queue)
    worker.wait_for(" ready.")
    execution = _execution(workspace, user, "import os\nprint(os.getuid())\nsum(range(10))")
    outcome = asyncio.run(code_execution_arun(execution_id=execution.id))
    assert (outcome["status"], outcome["result"], outcome["stdout"]) == ("ok", "45", "65534\n")
    assert never_here == []
    log = worker.wait_for("succeeded")
    assert "Task agents.code_execute[" in log
    assert "'succeeded'" in log  # the task's return value: the execution's status
    execution.refresh_from_db()
    assert execution.status == "succeeded"
    assert execution.outcome["result"] == "45"


def test_with_no_worker_the_execution_ends_unavailable_and_failed(
    workspace, user, queue, never_here, worker_for, monkeypatch
):
    CodeInterpreterPolicy.objects.create(workspace=workspace, enabled=True, wall_seconds=1)
    monkeypatch.setattr(services, "SANDBOX_QUEUE_GRACE_SECONDS", 1)
    execution = _execution(workspace, user, "6 * 7")
    started = time.monotonic()
    outcome = asyncio.run(code_execution_arun(execution_id=execution.id))
    elapsed = time.monotonic() - started
    assert outcome == {"status": "unavailable", "error": "No sandbox worker answered in time."}
    assert 2 <= elapsed < 10
    execution.refresh_from_db()
    assert (execution.status, execution.outcome) == ("failed", outcome)
    assert execution.finished_at is not None
    assert never_here == []
    # A worker that turns up later takes the message and leaves the execution as it is.
    worker = worker_for(queue)
    log = worker.wait_for("succeeded")
    assert "'running'" not in log and "'failed'" in log
    execution.refresh_from_db()
    assert (execution.status, execution.outcome) == ("failed", outcome)
