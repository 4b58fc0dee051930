"""The WebSocket stream (Channels consumer): the same JSON events as SSE, resumable."""

import json

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator

from apps.conversations.models import Run
from apps.conversations.services import message_send, stream_ticket_create
from config.asgi import application
from tests.agents.factories import actor_for
from tests.conversations.factories import make_conversation
from tests.users.factories import UserFactory, make_api_key


@pytest.fixture
def conv_with_events(transactional_db, user, workspace, chat_agent, scripted_llm):
    """A conversation with one run answered through the run service (outside a server,
    the run executes in the Celery task, eager in tests) and its events, as the
    WebSocket replays them from the start."""
    scripted_llm.push("Hello")
    conv = make_conversation(agent=chat_agent, user=user)
    run = message_send(
        actor=actor_for(user=user, workspace=workspace), conversation=conv, content="hi"
    )
    assert Run.objects.get(id=run.id).status == "completed"
    _, key = make_api_key(user=user, workspace=workspace, scopes=("conversations:read",))
    connected, _, events = _connect_with(conv, [(b"authorization", f"Bearer {key}".encode())])
    assert connected
    types = [e["type"] for e in events]
    assert types[0] == "run.started" and types[-3:] == ["run.completed", "done", "end"]
    assert "answer.delta" in types
    cursors = [e["cursor"] for e in events]
    assert cursors == sorted(set(cursors))
    assert {e["run_id"] for e in events} == {str(run.id)}
    return conv, events


def _ticket(user, workspace, conv):
    return stream_ticket_create(actor=actor_for(user=user, workspace=workspace), conversation=conv)[
        1
    ]


async def _receive_all(comm, count=None):
    """`count` frames, or every frame up to the run's `end`."""
    got = []
    while count is None or len(got) < count:
        got.append(json.loads(await comm.receive_from(timeout=5)))
        if count is None and got[-1]["type"] == "end":
            break
    return got


async def _refused(comm):
    """A refusal: the socket is accepted, gets one error frame, then the close code."""
    connected, _ = await comm.connect()
    assert connected
    error = json.loads(await comm.receive_from(timeout=5))
    closed = await comm.receive_output(timeout=5)
    assert closed["type"] == "websocket.close", closed
    assert error["type"] == "error" and error["message"], error
    return error["code"], closed["code"]


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
        got = await _receive_all(comm)
        await comm.disconnect()

        ticket = await sync_to_async(_ticket)(user, workspace, conv)
        comm = WebsocketCommunicator(
            application,
            f"/ws/v1/conversations/{conv.id}/stream?cursor={events[2]['cursor']}&ticket={ticket}",
            headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
        )
        connected, _ = await comm.connect()
        assert connected
        tail = await _receive_all(comm, len(events) - 3)
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

        def comm():
            return WebsocketCommunicator(
                application,
                f"/ws/v1/conversations/{conv.id}/stream?ticket={ticket}",
                headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")],
            )

        first = comm()
        connected, _ = await first.connect()
        await first.disconnect()
        second = comm()
        refusal = await _refused(second)
        await second.disconnect()
        return connected, refusal

    assert async_to_sync(scenario)() == (True, ("unauthorized", 4401))


def _connect_with(conv, headers, cursor=-1):
    async def scenario():
        comm = WebsocketCommunicator(
            application, f"/ws/v1/conversations/{conv.id}/stream?cursor={cursor}", headers=headers
        )
        connected, code = await comm.connect()
        got = await _receive_all(comm) if connected else None
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
        async def scenario():
            comm = WebsocketCommunicator(
                application, f"/ws/v1/conversations/{conv.id}/stream", headers=headers
            )
            refusal = await _refused(comm)
            await comm.disconnect()
            return refusal

        return async_to_sync(scenario)()

    assert code_for([(b"authorization", b"Bearer ak_not-a-real-key")]) == ("unauthorized", 4401)
    assert code_for([(b"authorization", f"Bearer {narrow}".encode())]) == ("forbidden", 4403)
    # Another workspace's key: the conversation does not exist for it.
    assert code_for([(b"authorization", f"Bearer {foreign}".encode())]) == (
        "conversation_not_found",
        4404,
    )
    # Without a bearer header, a ticket or a session: unauthorized.
    assert code_for([(b"origin", b"https://evil.example")]) == ("unauthorized", 4401)
