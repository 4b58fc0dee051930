"""Embedded profile: with no channel layer between processes, the events of a run that
another process executes (a Celery worker running a background run) still reach an open
stream of this process within about a second, not at its next idle poll (15 s)."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from apps.conversations.streaming import EARLY_POLLS, events_after
from apps.core.events import HEARTBEAT, EventType
from tests.agents.factories import make_agent
from tests.conversations.factories import make_conversation
from tests.providers.factories import make_scripted_provider
from tests.workers import run_worker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        "InMemory" not in settings.CHANNEL_LAYERS["default"]["BACKEND"],
        reason="the production profile delivers other processes' events through Redis "
        "(tests/conversations/test_two_processes.py)",
    ),
]

# In the other process: a background run through the run service, executed there to its
# end; prints when it ended (wall clock).
OTHER_PROCESS = """
import sys, time, uuid
from apps.conversations.models import Conversation
from apps.conversations.services import message_send
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership

time.sleep(float(sys.argv[2]))
conv = Conversation.objects.select_related("workspace", "user").get(id=uuid.UUID(sys.argv[1]))
membership = Membership.objects.get(user=conv.user, workspace=conv.workspace)
actor = Actor(user=conv.user, workspace=conv.workspace, role=Role(membership.role))
message_send(actor=actor, conversation=conv, content="Hello?", background=True)
print(time.time())
"""


@pytest.mark.django_db(transaction=True)
def test_a_stream_sees_another_process_run_within_a_second(user, workspace, scripted_llm):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    conv = make_conversation(agent=make_agent(workspace=workspace, user=user), user=user)
    conv.title = "Set, so no title call"
    conv.save(update_fields=["title"])
    scripted_llm.push("From the other process.")
    quiet = sum(EARLY_POLLS) + 1.0  # this stream's early polls are over: it is idle

    ended: list[float] = []
    failed: list[BaseException] = []

    def other_process() -> None:
        try:
            ended.append(float(run_worker(OTHER_PROCESS, [str(conv.id), str(quiet)]).split()[-1]))
        except BaseException as exc:  # reported below, after the stream gives up
            failed.append(exc)

    other = threading.Thread(target=other_process)

    async def stream() -> list[tuple[str, float]]:
        got = []
        other.start()
        async for item in events_after(conversation_id=conv.id, after=None):
            if failed:
                raise failed[0]
            if item is HEARTBEAT:
                continue
            got.append((str(item.type), time.time()))
            if item.type == EventType.END:
                return got
        return got

    got = async_to_sync(asyncio.wait_for)(stream(), timeout=quiet + 60)
    other.join()
    types = [t for t, _ in got]
    assert types[0] == "run.started" and types[-1] == "end"
    assert "run.completed" in types
    # The run ended in the other process; this stream had its last event within ~1 s.
    assert got[-1][1] - ended[0] < 1.5
