"""The platform's agents as A2A agents, driven by the official `a2a-sdk` client over real
HTTP against the live server and the scripted model server."""

import asyncio
import json

import httpx
import pytest
from a2a.client import AgentCardResolutionError, ClientConfig, ClientFactory
from a2a.client.errors import A2AClientError
from a2a.types import (
    CancelTaskRequest,
    GetTaskRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import UnsupportedOperationError

from apps.conversations.models import Conversation, Run
from apps.providers.scripted import Reply, ToolCall
from tests.agents.factories import make_agent
from tests.users.factories import UserFactory, make_api_key

pytestmark = pytest.mark.slow


def _message(text: str, **kwargs) -> SendMessageRequest:
    return SendMessageRequest(
        message=Message(message_id="m-1", role=Role.ROLE_USER, parts=[Part(text=text)], **kwargs)
    )


async def _with_client(url: str, key: str, action, *, streaming: bool = True):
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=30) as http:
        factory = ClientFactory(ClientConfig(httpx_client=http, streaming=streaming))
        client = await factory.create_from_url(url)
        return await action(client)


async def _collect(client, request):
    return [event async for event in client.send_message(request)]


def test_card_discovery_send_and_get(live, user, workspace, chat_agent, scripted_llm):
    chat_agent.description = "Helps with questions."
    chat_agent.starter_questions = ["What can you do?"]
    chat_agent.builtin_tools = ["calculator"]
    chat_agent.save()
    _, key = make_api_key(user=user, workspace=workspace)
    url = f"{live.url}/a2a/agents/helper"
    scripted_llm.push("A2A answer.")

    async def scenario(client):
        card = client._card
        responses = await _collect(client, _message("Hello over A2A"))
        task = responses[-1].task
        fetched = await client.get_task(GetTaskRequest(id=task.id))
        return card, task, fetched

    card, task, fetched = asyncio.run(_with_client(url, key, scenario, streaming=False))

    assert card.name == "Helper"
    assert card.description == "Helps with questions."
    assert card.capabilities.streaming is True
    assert card.capabilities.push_notifications is False
    assert card.supported_interfaces[0].url == f"{live.url}/a2a/agents/helper/rpc"
    assert [s.id for s in card.skills] == ["helper.chat", "helper.tool.calculator"]
    assert list(card.skills[0].examples) == ["What can you do?"]
    assert sorted(card.security_schemes) == ["bearer", "oauth2"]
    flow = card.security_schemes["oauth2"].oauth2_security_scheme.flows.authorization_code
    assert flow.token_url == f"{live.url}/oauth/token/"
    assert flow.authorization_url == f"{live.url}/oauth/authorize/"

    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert [a.artifact_id for a in task.artifacts] == ["answer"]
    assert task.artifacts[0].parts[0].text == "A2A answer."
    run = Run.objects.get(id=task.id)
    assert str(run.conversation_id) == task.context_id
    assert Conversation.objects.get(id=run.conversation_id).source == "a2a"
    assert scripted_llm.requests[0]["messages"][-1]["content"] == "Hello over A2A"
    assert fetched.status.state == TaskState.TASK_STATE_COMPLETED
    assert [(m.role, m.parts[0].text) for m in fetched.history] == [
        (Role.ROLE_USER, "Hello over A2A"),
        (Role.ROLE_AGENT, "A2A answer."),
    ]


def test_streaming_a_task_to_completion_then_continuing_its_context(
    live, user, workspace, chat_agent, scripted_llm
):
    _, key = make_api_key(user=user, workspace=workspace)
    url = f"{live.url}/a2a/agents/helper"
    scripted_llm.push("Streamed answer in words.", "Second answer.")

    async def scenario(client):
        events = await _collect(client, _message("Stream please"))
        context_id = events[0].task.context_id
        again = await _collect(client, _message("And again", context_id=context_id))
        return events, again

    events, again = asyncio.run(_with_client(url, key, scenario))

    kinds = [e.WhichOneof("payload") for e in events]
    assert kinds[0] == "task"
    # The run was started in this process for the stream (else it would be queued).
    assert events[0].task.status.state in (
        TaskState.TASK_STATE_WORKING,
        TaskState.TASK_STATE_SUBMITTED,
    )
    assert events[0].task.history[0].parts[0].text == "Stream please"
    chunks = [e.artifact_update for e in events if e.HasField("artifact_update")]
    assert len(chunks) >= 3  # streamed word by word, then the last (empty) chunk
    assert "".join(c.artifact.parts[0].text for c in chunks) == "Streamed answer in words."
    assert chunks[0].append is False and all(c.append for c in chunks[1:])
    assert chunks[-1].last_chunk is True
    statuses = [e.status_update.status.state for e in events if e.HasField("status_update")]
    assert statuses[0] == TaskState.TASK_STATE_WORKING
    assert statuses[-1] == TaskState.TASK_STATE_COMPLETED
    assert kinds[-1] == "status_update"

    assert again[0].task.context_id == events[0].task.context_id
    assert again[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert Conversation.objects.count() == 1
    assert Run.objects.filter(status="completed").count() == 2


def test_cancelling_a_streamed_task(live, user, workspace, chat_agent, scripted_llm):
    _, key = make_api_key(user=user, workspace=workspace)
    url = f"{live.url}/a2a/agents/helper"
    scripted_llm.push(Reply(text=" ".join(["word"] * 200), token_delay=0.05))

    async def scenario(client):
        seen = []
        cancelled = None
        async for event in client.send_message(_message("Talk for long")):
            seen.append(event)
            if event.HasField("artifact_update") and cancelled is None:
                cancelled = await client.cancel_task(CancelTaskRequest(id=seen[0].task.id))
        return seen, cancelled

    seen, cancelled = asyncio.run(_with_client(url, key, scenario))

    assert cancelled.status.state == TaskState.TASK_STATE_CANCELED
    assert seen[-1].status_update.status.state == TaskState.TASK_STATE_CANCELED
    assert Run.objects.get(id=cancelled.id).status == "cancelled"


def test_bad_credential_is_401_and_another_workspaces_agent_is_404(
    live, user, workspace, chat_agent, scripted_llm
):
    url = f"{live.url}/a2a/agents/helper"

    async def noop(client):
        return client

    with pytest.raises(AgentCardResolutionError) as caught:
        asyncio.run(_with_client(url, "not-a-key", noop))
    assert caught.value.status_code == 401

    mallory = UserFactory(email="mallory3@example.com")
    other_ws = mallory.memberships.get().workspace
    _, their_key = make_api_key(user=mallory, workspace=other_ws)
    with pytest.raises(AgentCardResolutionError) as caught:
        asyncio.run(_with_client(url, their_key, noop))
    assert caught.value.status_code == 404

    # The RPC endpoint too: a stranger cannot send to our agent, even knowing its URL.
    r = httpx.post(
        f"{url}/rpc",
        json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}},
        headers={"Authorization": f"Bearer {their_key}"},
    )
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "agent_not_found"
    r = httpx.post(
        f"{url}/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "SendMessage", "params": {}}
    )
    assert r.status_code == 401

    # With our card but their credential, the SDK client's calls are refused over HTTP.
    _, key = make_api_key(user=user, workspace=workspace)

    async def card_then_stranger(client):
        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {their_key}"}, timeout=30
        ) as http:
            stranger = ClientFactory(ClientConfig(httpx_client=http, streaming=False)).create(
                client._card
            )
            return await _collect(stranger, _message("hi"))

    with pytest.raises(A2AClientError):
        asyncio.run(_with_client(url, key, card_then_stranger))
    assert Conversation.objects.count() == 0
    assert scripted_llm.requests == []


def test_a_read_scope_reads_cards_but_cannot_send(live, user, workspace, chat_agent):
    _, key = make_api_key(user=user, workspace=workspace, scopes=("conversations:read",))
    headers = {"Authorization": f"Bearer {key}"}
    card = httpx.get(f"{live.url}/a2a/agents/helper/.well-known/agent-card.json", headers=headers)
    assert card.status_code == 200
    r = httpx.post(
        f"{live.url}/a2a/agents/helper/rpc",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "x", "role": "ROLE_USER", "parts": [{"text": "hi"}]}
            },
        },
        headers={**headers, "A2A-Version": "1.0"},
    )
    assert r.status_code == 403
    for method in ("message/send", "message/stream", "CancelTask", "tasks/cancel"):
        r = httpx.post(
            f"{live.url}/a2a/agents/helper/rpc",
            json={"jsonrpc": "2.0", "id": 2, "method": method, "params": {}},
            headers=headers,
        )
        assert r.status_code == 403, method
    read = httpx.post(
        f"{live.url}/a2a/agents/helper/rpc",
        json={"jsonrpc": "2.0", "id": 3, "method": "GetTask", "params": {"id": "nope"}},
        headers={**headers, "A2A-Version": "1.0"},
    )
    assert read.status_code == 200
    assert read.json()["error"]["code"] == -32001  # TaskNotFoundError
    assert Conversation.objects.count() == 0


def test_workspace_card_lists_agents_and_routes_by_tenant(
    live, user, workspace, chat_agent, scripted_llm
):
    make_agent(workspace=workspace, user=user, name="Second", slug="second")
    mallory = UserFactory(email="mallory4@example.com")
    make_agent(
        workspace=mallory.memberships.get().workspace, user=mallory, name="Theirs", slug="theirs"
    )
    _, key = make_api_key(user=user, workspace=workspace)
    scripted_llm.push("Via the workspace.")

    async def scenario(client):
        card = client._card
        events = await _collect(client, _message("Through the workspace endpoint"))
        return card, events

    card, events = asyncio.run(_with_client(f"{live.url}/a2a", key, scenario, streaming=False))
    assert [s.id for s in card.skills] == ["helper", "second"]
    assert [(i.url, i.tenant) for i in card.supported_interfaces] == [
        (f"{live.url}/a2a", "helper"),
        (f"{live.url}/a2a", "second"),
    ]
    task = events[-1].task
    assert task.status.state == TaskState.TASK_STATE_COMPLETED
    assert Run.objects.get(id=task.id).agent_id == chat_agent.id
    root = httpx.get(
        f"{live.url}/.well-known/agent-card.json", headers={"Authorization": f"Bearer {key}"}
    )
    assert root.status_code == 200
    assert [s["id"] for s in root.json()["skills"]] == ["helper", "second"]


def test_bad_input_gets_a_jsonrpc_error_naming_the_field(live, user, workspace, chat_agent):
    _, key = make_api_key(user=user, workspace=workspace)
    r = httpx.post(
        f"{live.url}/a2a/agents/helper/rpc",
        json={
            "jsonrpc": "2.0",
            "id": 7,
            "method": "SendMessage",
            "params": {
                "message": {"messageId": "x", "role": "ROLE_USER", "parts": [{"text": " "}]}
            },
        },
        headers={"Authorization": f"Bearer {key}", "A2A-Version": "1.0"},
    )
    assert r.status_code == 200
    body = r.json()
    assert body["id"] == 7
    assert body["error"]["code"] == -32602
    assert "message.parts" in body["error"]["message"]
    assert Conversation.objects.count() == 0


def test_our_agent_delegates_to_a_remote_a2a_agent_over_a2a(
    live, user, workspace, chat_agent, scripted_llm
):
    """End to end: a client sends to our agent over A2A; our agent delegates to a remote
    agent served by the official SDK server; the run's events show the delegation."""
    from apps.skills.models import Tool
    from tests.skills.a2a_server import run_remote_a2a

    _, key = make_api_key(user=user, workspace=workspace)
    headers = {"Authorization": f"Bearer {key}"}
    with run_remote_a2a() as remote:
        r = httpx.post(
            f"{live.url}/api/v1/remote-agents",
            json={"name": "researcher", "url": remote.url},
            headers=headers,
        )
        assert r.status_code == 201, r.text
        remote_id = r.json()["data"]["id"]
        chat_agent.tools.add(Tool.objects.get(remote_agent_id=remote_id))
        scripted_llm.push(
            Reply(tool_calls=[ToolCall("ask_researcher", {"task": "capital of Peru"})]),
            "Lima (from the researcher).",
        )

        async def scenario(client):
            return await _collect(client, _message("Where is the capital of Peru?"))

        events = asyncio.run(_with_client(f"{live.url}/a2a/agents/helper", key, scenario))

    assert remote.executor.tasks == ["capital of Peru"]
    assert events[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    tool_updates = [
        e.status_update.status.message.parts[0].text
        for e in events
        if e.HasField("status_update") and e.status_update.status.message.parts
    ]
    assert "Calling ask_researcher." in tool_updates
    task_id = events[0].task.id
    with httpx.stream(
        "GET", f"{live.url}/api/v1/runs/{task_id}/stream?cursor=-1", headers=headers, timeout=30
    ) as stream:
        frames = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ")]
    updates = [f["data"] for f in frames if f["type"] == "remote_agent.update"]
    assert updates and updates[-1]["state"] == "completed"
    assert {u["remote_agent_id"] for u in updates} == {remote_id}
    done = [f["data"] for f in frames if f["type"] == "answer.done"][-1]
    assert done["content"] == "Lima (from the researcher)."
    assert [c["document_id"] for c in done["citations"]] == [f"a2a:{remote_id}"]


def test_resubscribing_to_a_running_task_and_to_an_ended_one(
    live, user, workspace, chat_agent, scripted_llm
):
    _, key = make_api_key(user=user, workspace=workspace)
    url = f"{live.url}/a2a/agents/helper"
    words = " ".join(f"w{i}" for i in range(30))
    scripted_llm.push(Reply(text=words, token_delay=0.05))

    async def scenario(client):
        stream = client.send_message(_message("Slowly"))
        first = await anext(stream)
        task_id = first.task.id
        resubscribed = [e async for e in client.subscribe(SubscribeToTaskRequest(id=task_id))]
        async for _ in stream:
            pass
        with pytest.raises(UnsupportedOperationError) as ended:
            async for _ in client.subscribe(SubscribeToTaskRequest(id=task_id)):
                pass
        return resubscribed, ended.value

    resubscribed, ended = asyncio.run(_with_client(url, key, scenario))

    assert resubscribed[0].WhichOneof("payload") == "task"
    chunks = [e.artifact_update for e in resubscribed if e.HasField("artifact_update")]
    assert "".join(c.artifact.parts[0].text for c in chunks) == words  # from the run's start
    assert resubscribed[-1].status_update.status.state == TaskState.TASK_STATE_COMPLETED
    assert "GetTask" in str(ended)


def test_files_the_agent_wrote_are_artifacts(live, user, workspace, chat_agent, scripted_llm):
    chat_agent.builtin_tools = ["file_write"]
    chat_agent.save()
    _, key = make_api_key(user=user, workspace=workspace)
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("file_write", {"path": "notes.txt", "content": "hello"})]),
        "I wrote notes.txt.",
    )

    async def scenario(client):
        events = await _collect(client, _message("Write a note"))
        fetched = await client.get_task(GetTaskRequest(id=events[0].task.id))
        return events, fetched

    events, fetched = asyncio.run(_with_client(f"{live.url}/a2a/agents/helper", key, scenario))

    streamed = [
        e.artifact_update.artifact
        for e in events
        if e.HasField("artifact_update") and e.artifact_update.artifact.name == "notes.txt"
    ]
    assert len(streamed) == 1
    assert [a.name for a in fetched.artifacts] == ["answer", "notes.txt"]
    part = fetched.artifacts[1].parts[0]
    assert part.filename == "notes.txt" and part.media_type.startswith("text/plain")
    download = httpx.get(part.url)  # a signed, short-lived URL: no credential needed
    assert download.status_code == 200
    assert download.content == b"hello"


def test_v03_method_names_are_accepted(live, user, workspace, chat_agent, scripted_llm):
    """Clients still speaking A2A 0.3 (`message/send`, `tasks/get`) are answered by the
    SDK's compatibility adapter over the same handler."""
    _, key = make_api_key(user=user, workspace=workspace)
    scripted_llm.push("Old protocol answer.")
    rpc = f"{live.url}/a2a/agents/helper/rpc"
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(
        rpc,
        json={
            "jsonrpc": "2.0",
            "id": "a",
            "method": "message/send",
            "params": {
                "message": {
                    "kind": "message",
                    "messageId": "m-03",
                    "role": "user",
                    "parts": [{"kind": "text", "text": "Hello from 0.3"}],
                }
            },
        },
        headers=headers,
        timeout=30,
    )
    assert r.status_code == 200
    task = r.json()["result"]
    assert task["kind"] == "task"
    assert task["status"]["state"] == "completed"
    assert task["artifacts"][0]["parts"][0]["text"] == "Old protocol answer."
    got = httpx.post(
        rpc,
        json={"jsonrpc": "2.0", "id": "b", "method": "tasks/get", "params": {"id": task["id"]}},
        headers=headers,
        timeout=30,
    ).json()["result"]
    assert got["id"] == task["id"] and got["status"]["state"] == "completed"


def test_a_task_waiting_for_an_approval_is_input_required(
    live, user, workspace, chat_agent, scripted_llm
):
    chat_agent.builtin_tools = ["calculator"]
    chat_agent.tools_requiring_approval = ["calculator"]
    chat_agent.save()
    _, key = make_api_key(user=user, workspace=workspace)
    scripted_llm.push(Reply(tool_calls=[ToolCall("calculator", {"expression": "2+2"})]))

    async def scenario(client):
        return await _collect(client, _message("Compute 2+2"))

    for streaming in (False, True):  # each in a new conversation
        events = asyncio.run(
            _with_client(f"{live.url}/a2a/agents/helper", key, scenario, streaming=streaming)
        )
        last = events[-1].task if not streaming else events[-1].status_update
        assert last.status.state == TaskState.TASK_STATE_INPUT_REQUIRED
        assert "approval" in last.status.message.parts[0].text
        run = Run.objects.get(id=events[0].task.id)
        assert run.status == "requires_action"
        scripted_llm.push(Reply(tool_calls=[ToolCall("calculator", {"expression": "2+2"})]))
