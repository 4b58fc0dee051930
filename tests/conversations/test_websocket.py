"""The WebSocket stream (Channels consumer): the same JSON events as SSE, resumable."""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from apps.conversations.eventlog import publish_detached
from apps.conversations.services import stream_ticket_create
from apps.core.events import EventType
from config.asgi import application
from tests.agents.factories import actor_for, make_agent
from tests.conversations.factories import make_conversation


@pytest.fixture
def conv_with_events(transactional_db, user, workspace):
    agent = make_agent(workspace=workspace, user=user, name="Helper", slug="helper")
    conv = make_conversation(agent=agent, user=user)
    events = async_to_sync(publish_detached)(
        conversation_id=conv.id,
        run_id=None,
        events=[
            (EventType.ANSWER_START, {"message_id": "m1"}),
            (EventType.ANSWER_DELTA, {"message_id": "m1", "delta": "Hel"}),
            (EventType.ANSWER_DELTA, {"message_id": "m1", "delta": "lo"}),
            (EventType.ANSWER_DONE, {"message_id": "m1", "content": "Hello", "citations": []}),
            (EventType.END, {}),
        ],
    )
    return conv, [e.to_dict() for e in events]


def _ticket(user, workspace, conv):
    return stream_ticket_create(actor=actor_for(user=user, workspace=workspace), conversation=conv)[
        1
    ]


async def _receive_all(comm, count):
    return [json.loads(await comm.receive_from(timeout=5)) for _ in range(count)]


def test_websocket_replays_and_resumes_with_cursor(conv_with_events, user, workspace):
    conv, events = conv_with_events

    async def scenario():
        ticket = await sync_to_async(_ticket)(user, workspace, conv)
        comm = WebsocketCommunicator(
            application,
            f"/ws/v1/conversations/{conv.id}/stream?cursor=-1&ticket={ticket}",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
        )
        connected, _ = await comm.connect()
        assert connected
        got = await _receive_all(comm, 5)
        await comm.disconnect()

        ticket = await sync_to_async(_ticket)(user, workspace, conv)
        comm = WebsocketCommunicator(
            application,
            f"/ws/v1/conversations/{conv.id}/stream?cursor={events[2]['cursor']}&ticket={ticket}",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
        )
        connected, _ = await comm.connect()
        assert connected
        tail = await _receive_all(comm, 2)
        assert await comm.receive_nothing(timeout=0.3)
        await comm.disconnect()
        return got, tail

    got, tail = async_to_sync(scenario)()
    assert got == events
    assert tail == events[3:]


def test_websocket_refuses_a_used_ticket(conv_with_events, user, workspace):
    conv, _ = conv_with_events

    async def scenario():
        ticket = await sync_to_async(_ticket)(user, workspace, conv)
        results = []
        for _ in range(2):
            comm = WebsocketCommunicator(
                application,
                f"/ws/v1/conversations/{conv.id}/stream?ticket={ticket}",
                headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
            )
            connected, code = await comm.connect()
            results.append((connected, code))
            await comm.disconnect()
        return results

    assert async_to_sync(scenario)() == [(True, None), (False, 4401)]
