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
from tests.users.factories import UserFactory, make_api_key


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


def _connect_with(conv, headers, cursor=-1):
    async def scenario():
        comm = WebsocketCommunicator(
            application, f"/ws/v1/conversations/{conv.id}/stream?cursor={cursor}", headers=headers
        )
        connected, code = await comm.connect()
        got = await _receive_all(comm, 5) if connected else None
        await comm.disconnect()
        return connected, code, got

    return async_to_sync(scenario)()


def test_websocket_accepts_an_api_key_without_origin(conv_with_events, user, workspace):
    """Non-browser clients authenticate with the same bearer credentials as the REST API
    and send no Origin header."""
    conv, events = conv_with_events
    _, key = make_api_key(user=user, workspace=workspace, scopes=("conversations:read",))
    connected, _, got = _connect_with(conv, [(b"authorization", f"Bearer {key}".encode())])
    assert connected
    assert got == events


def test_websocket_bearer_refusals(conv_with_events, user, workspace):
    conv, _ = conv_with_events
    _, narrow = make_api_key(user=user, workspace=workspace, scopes=("knowledge:read",))
    outsider = UserFactory(email="mallory@example.com")
    outsider_ws = outsider.memberships.get().workspace
    _, foreign = make_api_key(user=outsider, workspace=outsider_ws)

    def code_for(headers):
        connected, code, _ = _connect_with(conv, headers)
        assert not connected
        return code

    assert code_for([(b"authorization", b"Bearer ak_not-a-real-key")]) == 4401
    assert code_for([(b"authorization", f"Bearer {narrow}".encode())]) == 4403
    # Another workspace's key: the conversation does not exist for it.
    assert code_for([(b"authorization", f"Bearer {foreign}".encode())]) == 4404
    # Without a bearer header the Origin check applies: a foreign page is refused.
    connected, _, _ = _connect_with(conv, [(b"origin", b"https://evil.example")])
    assert not connected
