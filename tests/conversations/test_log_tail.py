"""Embedded profile: with no channel layer between processes, events that another process
(the Celery worker running a background run) writes to the log still reach an open
stream within about a second, not at its next idle poll (15 s)."""

import asyncio
import threading
import time

import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

from apps.conversations.eventlog import reserve_cursors_sync, write_events_sync
from apps.conversations.streaming import EARLY_POLLS, events_after
from apps.core.events import HEARTBEAT, AnswerDone, AnswerStart, End, Envelope, EventType
from tests.agents.factories import make_agent
from tests.conversations.factories import make_conversation

pytestmark = pytest.mark.skipif(
    "InMemory" not in settings.CHANNEL_LAYERS["default"]["BACKEND"],
    reason="the production profile delivers other processes' events through Redis "
    "(tests/conversations/test_two_processes.py)",
)


def test_a_stream_sees_another_process_log_writes_within_a_second(
    transactional_db, user, workspace
):
    conv = make_conversation(agent=make_agent(workspace=workspace, user=user), user=user)
    quiet = sum(EARLY_POLLS) + 1.0  # the stream's early polls are over: it is idle

    def other_process_writes() -> float:
        time.sleep(quiet)
        first, _, _ = reserve_cursors_sync(conv.id, 3)
        events = [
            Envelope(AnswerStart(message_id="m"), conv.id, None, first),
            Envelope(
                AnswerDone(message_id="m", content="x", citations=[]), conv.id, None, first + 1
            ),
            Envelope(End(), conv.id, None, first + 2),
        ]
        write_events_sync(events)  # the log only: no live delivery from "another process"
        return time.monotonic()

    written: list[float] = []
    writer = threading.Thread(target=lambda: written.append(other_process_writes()))

    async def scenario() -> list[tuple[str, float]]:
        got = []
        writer.start()
        async for item in events_after(conversation_id=conv.id, after=None):
            if item is HEARTBEAT:
                continue
            got.append((str(item.type), time.monotonic()))
            if item.type == EventType.END:
                return got
        return got

    got = async_to_sync(asyncio.wait_for)(scenario(), timeout=quiet + 10)
    writer.join()
    assert [t for t, _ in got] == ["answer.start", "answer.done", "end"]
    assert got[0][1] - written[0] < 1.5
