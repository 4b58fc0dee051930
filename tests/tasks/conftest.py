import pytest

from tests.agents.factories import make_agent
from tests.providers.factories import make_scripted_provider


@pytest.fixture
def agent(workspace, user, scripted_llm):
    """An agent of the user's workspace answering through the scripted model server."""
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return make_agent(workspace=workspace, user=user, name="Reporter", slug="reporter")


class Clock:
    """The platform's clock (django.utils.timezone.now), set by the test."""

    def __init__(self, monkeypatch):
        from django.utils import timezone

        real = timezone.now
        self.now = None
        monkeypatch.setattr(timezone, "now", lambda: self.now or real())


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


@pytest.fixture
def tick(clock):
    """tick(now): the beat tasks at `now` (the stale-job sweep, then the tasks scan).
    Tests using it are transactional (runs write from their own threads), so what the
    scan enqueues after commit runs at once (eager Celery: the executions and their
    runs) before it returns."""
    from apps.core.jobs import jobs_sweep
    from apps.tasks.services import tasks_tick

    def run(now):
        clock.now = now
        jobs_sweep(now=now)
        return tasks_tick(now=now)

    return run


@pytest.fixture
def receiver(allow_loopback, settings):
    """A real webhook receiver over HTTP (loopback allowed for the outbound guard);
    attempts time out after 0.5 s."""
    from tests.tasks.receiver import Receiver

    settings.WEBHOOK_TIMEOUT_SECONDS = 0.5
    server = Receiver().start()
    yield server
    server.stop()
