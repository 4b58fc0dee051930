"""The AG-UI endpoint over real HTTP: a raw httpx client sends RunAgentInput bodies, and
every streamed event is parsed with the official `ag-ui-protocol` types (pydantic
validation of each event) and checked against the protocol's sequence rules."""

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from ag_ui.core import Event, EventType, RunAgentInput
from pydantic import TypeAdapter

from apps.conversations.models import Conversation, Message, Run
from apps.providers.scripted import Reply, ToolCall
from tests.agents.factories import make_agent
from tests.conversations.conftest import wait_for
from tests.users.factories import UserFactory, make_api_key

pytestmark = pytest.mark.slow

EVENT = TypeAdapter(Event)
TERMINAL = {EventType.RUN_FINISHED, EventType.RUN_ERROR}


@pytest.fixture
def key(user, workspace):
    return make_api_key(user=user, workspace=workspace)[1]


@pytest.fixture
def agui(live, key):
    client = httpx.Client(base_url=live.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
    yield client
    client.close()


def body(
    text: str | None = "Hello",
    *,
    thread: str | None = None,
    run: str | None = None,
    messages: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    data = {
        "threadId": thread or str(uuid.uuid4()),
        "runId": run or str(uuid.uuid4()),
        "messages": messages
        if messages is not None
        else [{"id": str(uuid.uuid4()), "role": "user", "content": text}],
        "tools": [],
        "context": [],
        **extra,
    }
    RunAgentInput.model_validate(data)  # what we send is a valid protocol input
    return data


def parse_events(response: httpx.Response) -> list[Any]:
    """Every `data:` frame of the SSE body, validated as an AG-UI event."""
    assert response.status_code == 200, response.read()
    assert response.headers["content-type"].startswith("text/event-stream")
    events = []
    for line in response.iter_lines():
        if line.startswith("data: "):
            events.append(EVENT.validate_python(json.loads(line[6:])))
    return events


def verify(events: list[Any], run_input: dict[str, Any]) -> None:
    """The protocol's sequence rules (those of @ag-ui/client's verifyEvents): RUN_STARTED
    first with the input's ids, messages and tool calls opened before their content and
    closed before the run ends, one terminal event, last."""
    assert events, "no events"
    assert events[0].type == EventType.RUN_STARTED
    assert events[0].thread_id == run_input["threadId"]
    assert events[0].run_id == run_input["runId"]
    texts: set[str] = set()
    reasoning: set[str] = set()
    calls: set[str] = set()
    ended_calls: set[str] = set()
    for index, event in enumerate(events):
        kind = event.type
        if index > 0:
            assert kind != EventType.RUN_STARTED
        if kind == EventType.TEXT_MESSAGE_START:
            assert event.message_id not in texts
            texts.add(event.message_id)
        elif kind == EventType.TEXT_MESSAGE_CONTENT:
            assert event.message_id in texts
        elif kind == EventType.TEXT_MESSAGE_END:
            texts.remove(event.message_id)
        elif kind == EventType.REASONING_START:
            assert event.message_id not in reasoning
            reasoning.add(event.message_id)
        elif kind in (EventType.REASONING_MESSAGE_START, EventType.REASONING_MESSAGE_CONTENT):
            assert event.message_id in reasoning
        elif kind == EventType.REASONING_END:
            reasoning.remove(event.message_id)
        elif kind == EventType.TOOL_CALL_START:
            assert event.tool_call_id not in calls
            calls.add(event.tool_call_id)
        elif kind == EventType.TOOL_CALL_ARGS:
            assert event.tool_call_id in calls
        elif kind == EventType.TOOL_CALL_END:
            calls.remove(event.tool_call_id)
            ended_calls.add(event.tool_call_id)
        elif kind in TERMINAL:
            assert index == len(events) - 1, "events after the terminal event"
            assert not texts and not calls and not reasoning, "open messages at the end"
            if kind == EventType.RUN_FINISHED:
                assert event.thread_id == run_input["threadId"]
                assert event.run_id == run_input["runId"]
    assert events[-1].type in TERMINAL


def run(client: httpx.Client, agent: Any, data: dict[str, Any]) -> list[Any]:
    with client.stream("POST", f"/api/v1/agents/{agent.slug}/ag-ui", json=data) as response:
        events = parse_events(response)
    verify(events, data)
    return events


def types(events: list[Any]) -> list[str]:
    return [e.type.value for e in events]


def test_plain_answer_streams_text_and_finishes(agui, chat_agent, scripted_llm):
    scripted_llm.push(Reply(text="Paris is the capital.", usage=(11, 4)))
    data = body("Capital of France?", state={"page": "home"})
    events = run(agui, chat_agent, data)
    assert types(events)[:3] == ["RUN_STARTED", "STATE_SNAPSHOT", "TEXT_MESSAGE_START"]
    assert types(events)[-2:] == ["TEXT_MESSAGE_END", "RUN_FINISHED"]
    text = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT)
    assert text == "Paris is the capital."
    assert events[1].snapshot == {"page": "home"}
    finished = events[-1]
    assert finished.outcome.type == "success"
    assert (finished.usage[0].input_tokens, finished.usage[0].output_tokens) == (11, 4)
    # The thread is the conversation, the run id the run; the answer is stored.
    conversation = Conversation.objects.get(id=data["threadId"])
    assert conversation.source == "agui" and conversation.agent_id == chat_agent.id
    wait_for(lambda: Run.objects.get(id=data["runId"]).status == "completed")
    assert events[0].metadata == {"conversationId": data["threadId"], "runId": data["runId"]}
    start = next(e for e in events if e.type == EventType.TEXT_MESSAGE_START)
    answer = Message.objects.get(id=start.message_id)
    assert (answer.role, answer.text) == ("assistant", "Paris is the capital.")
    # The state reached the model as context.
    system = scripted_llm.requests[0]["messages"][0]
    assert system["role"] == "system" and '"page": "home"' in system["content"]


def test_second_run_of_a_thread_continues_the_conversation(agui, chat_agent, scripted_llm):
    scripted_llm.push("First answer.", "Second answer.")
    thread = "my-thread-1"  # not a UUID: a conversation id is derived from it
    first = body("One", thread=thread)
    events = run(agui, chat_agent, first)
    answer_id = next(e for e in events if e.type == EventType.TEXT_MESSAGE_START).message_id
    second = body(
        thread=thread,
        messages=[
            *first["messages"],
            {"id": answer_id, "role": "assistant", "content": "First answer."},
            {"id": "u2", "role": "user", "content": "Two"},
        ],
    )
    events = run(agui, chat_agent, second)
    assert events[-1].type == EventType.RUN_FINISHED
    assert Conversation.objects.count() == 1
    conversation = Conversation.objects.get()
    assert events[0].metadata["conversationId"] == str(conversation.id)
    assert list(
        Message.objects.filter(conversation=conversation)
        .order_by("seq")
        .values_list("role", "text")
    ) == [
        ("user", "One"),
        ("assistant", "First answer."),
        ("user", "Two"),
        ("assistant", "Second answer."),
    ]
    sent = [m for m in scripted_llm.requests[1]["messages"] if m["role"] != "system"]
    assert [m["content"] for m in sent] == ["One", "First answer.", "Two"]


def test_new_thread_imports_earlier_messages(agui, chat_agent, scripted_llm):
    scripted_llm.push("Sure.")
    data = body(
        messages=[
            {"id": "a", "role": "user", "content": "Hi"},
            {"id": "b", "role": "assistant", "content": "Hello!"},
            {"id": "c", "role": "user", "content": "Help me"},
        ]
    )
    run(agui, chat_agent, data)
    sent = [m for m in scripted_llm.requests[0]["messages"] if m["role"] != "system"]
    assert [(m["role"], m["content"]) for m in sent] == [
        ("user", "Hi"),
        ("assistant", "Hello!"),
        ("user", "Help me"),
    ]


def test_server_tool_call_and_result(agui, chat_agent, scripted_llm):
    chat_agent.builtin_tools = ["calculator"]
    chat_agent.save(update_fields=["builtin_tools"])
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("calculator", {"expression": "6*7"}, id="c1")]),
        "It is 42.",
    )
    events = run(agui, chat_agent, body("6 times 7?"))
    assert types(events) == [
        "RUN_STARTED",
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "TOOL_CALL_RESULT",
        "TEXT_MESSAGE_START",
        *["TEXT_MESSAGE_CONTENT"] * 3,
        "TEXT_MESSAGE_END",
        "RUN_FINISHED",
    ]
    start, args, _, result = events[1:5]
    assert (start.tool_call_id, start.tool_call_name) == ("c1", "calculator")
    assert json.loads(args.delta) == {"expression": "6*7"}
    assert result.tool_call_id == "c1" and "42" in result.content
    assert events[-1].outcome.type == "success"


def test_frontend_tool_call_then_follow_up_run_with_its_result(agui, chat_agent, scripted_llm):
    tools = [
        {
            "name": "show_weather",
            "description": "Show the weather card in the page.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
    scripted_llm.push(
        Reply(
            text="Let me show it.", tool_calls=[ToolCall("show_weather", {"city": "Oslo"}, id="f1")]
        ),
        "The card shows 12 degrees in Oslo.",
    )
    first = body("Weather in Oslo?", tools=tools)
    events = run(agui, chat_agent, first)
    assert types(events)[-4:] == [
        "TOOL_CALL_START",
        "TOOL_CALL_ARGS",
        "TOOL_CALL_END",
        "RUN_FINISHED",
    ]
    assert EventType.TOOL_CALL_RESULT not in [e.type for e in events]
    call = next(e for e in events if e.type == EventType.TOOL_CALL_START)
    text_id = next(e for e in events if e.type == EventType.TEXT_MESSAGE_START).message_id
    assert (call.tool_call_id, call.tool_call_name, call.parent_message_id) == (
        "f1",
        "show_weather",
        text_id,
    )
    assert events[-1].outcome.type == "success"
    assert events[-1].outcome.pending_tool_call_ids == ["f1"]
    # The model was offered the client's tool; our run waits for its result.
    offered = [t["function"]["name"] for t in scripted_llm.requests[0]["tools"]]
    assert offered == ["show_weather"]
    db_run = Run.objects.get(id=first["runId"])
    assert db_run.status == "requires_action"

    follow_up = body(
        thread=first["threadId"],
        messages=[
            *first["messages"],
            {
                "id": text_id,
                "role": "assistant",
                "content": "Let me show it.",
                "toolCalls": [
                    {
                        "id": "f1",
                        "type": "function",
                        "function": {"name": "show_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"id": "t1", "role": "tool", "toolCallId": "f1", "content": "Oslo: 12 degrees"},
        ],
        tools=tools,
    )
    events = run(agui, chat_agent, follow_up)
    assert types(events)[0] == "RUN_STARTED" and types(events)[-1] == "RUN_FINISHED"
    text = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT)
    assert text == "The card shows 12 degrees in Oslo."
    assert events[-1].outcome.type == "success"
    assert not events[-1].outcome.pending_tool_call_ids
    # The same run resumed with the client's result as the call's tool message.
    assert events[0].metadata["runId"] == first["runId"]
    wait_for(lambda: Run.objects.get(id=first["runId"]).status == "completed")
    sent = scripted_llm.requests[1]["messages"]
    tool_message = next(m for m in sent if m["role"] == "tool")
    assert (tool_message["tool_call_id"], tool_message["content"]) == ("f1", "Oslo: 12 degrees")
    assert Message.objects.filter(role="tool", tool_call_id="f1").count() == 1


def test_tool_needing_approval_ends_with_an_interrupt_answered_by_resume(
    agui, chat_agent, scripted_llm
):
    chat_agent.builtin_tools = ["calculator"]
    chat_agent.tools_requiring_approval = ["calculator"]
    chat_agent.save(update_fields=["builtin_tools", "tools_requiring_approval"])
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("calculator", {"expression": "2+2"}, id="a1")]), "4."
    )
    first = body("2+2?")
    events = run(agui, chat_agent, first)
    outcome = events[-1].outcome
    assert outcome.type == "interrupt"
    assert [(i.id, i.reason, i.tool_call_id) for i in outcome.interrupts] == [
        ("a1", "tool_approval", "a1")
    ]
    second = body(
        thread=first["threadId"],
        messages=first["messages"],
        resume=[{"interruptId": "a1", "status": "resolved"}],
    )
    events = run(agui, chat_agent, second)
    assert [e.type for e in events if e.type == EventType.TOOL_CALL_RESULT]
    result = next(e for e in events if e.type == EventType.TOOL_CALL_RESULT)
    assert result.tool_call_id == "a1" and result.content.strip() == "4"
    assert events[-1].type == EventType.RUN_FINISHED and events[-1].outcome.type == "success"


def test_model_failure_is_a_run_error(agui, chat_agent, scripted_llm):
    scripted_llm.push(Reply(status=400, error_message="bad request upstream"))
    data = body("Hi")
    events = run(agui, chat_agent, data)
    assert types(events) == ["RUN_STARTED", "RUN_ERROR"]
    assert events[-1].code and events[-1].message
    wait_for(lambda: Run.objects.get(id=data["runId"]).status == "failed")


def test_without_credentials_401(live, chat_agent):
    response = httpx.post(f"{live.url}/api/v1/agents/{chat_agent.slug}/ag-ui", json=body())
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert Conversation.objects.count() == 0


def test_other_workspaces_agent_and_thread_404(live, agui, chat_agent, scripted_llm):
    scripted_llm.push("Mine.")
    mine = body("Hi")
    run(agui, chat_agent, mine)
    mallory = UserFactory(email="mallory@example.com", name="Mallory")
    theirs = mallory.memberships.get(workspace__is_personal=True).workspace
    their_agent = make_agent(workspace=theirs, user=mallory, name="Theirs", slug="theirs")
    _, their_key = make_api_key(user=mallory, workspace=theirs)
    counts = (Conversation.objects.count(), Run.objects.count(), Message.objects.count())
    with httpx.Client(
        base_url=live.url, headers={"Authorization": f"Bearer {their_key}"}, timeout=30
    ) as client:
        # Our agent, seen from their workspace.
        r = client.post(f"/api/v1/agents/{chat_agent.id}/ag-ui", json=body())
        assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"
        # Our thread, with their own agent.
        r = client.post(
            f"/api/v1/agents/{their_agent.slug}/ag-ui", json=body(thread=mine["threadId"])
        )
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
    # Their agent, with our key.
    r = agui.post(f"/api/v1/agents/{their_agent.id}/ag-ui", json=body())
    assert r.status_code == 404 and r.json()["error"]["code"] == "agent_not_found"
    assert (Conversation.objects.count(), Run.objects.count(), Message.objects.count()) == counts


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"runId": "r", "messages": []}, "threadId"),
        (
            {"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user"}]},
            "messages[0].content",
        ),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [{"id": "1", "role": "nobody", "content": "x"}],
            },
            "messages[0]",
        ),
        ({"threadId": "t", "runId": "r", "messages": []}, "messages"),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [{"id": "1", "role": "user", "content": "x"}],
                "tools": [{"name": "bad name", "description": "d"}],
            },
            "tools[0].name",
        ),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [{"id": "1", "role": "tool", "toolCallId": "x", "content": "r"}],
            },
            "messages",
        ),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [{"id": "1", "role": "assistant", "content": "x"}],
            },
            "messages[0]",
        ),
        (
            {
                "threadId": "t",
                "runId": "r",
                "messages": [{"id": "1", "role": "user", "content": "   "}],
            },
            "messages[0].content",
        ),
    ],
)
def test_bad_input_400_names_the_field(agui, chat_agent, data, field):
    r = agui.post(f"/api/v1/agents/{chat_agent.slug}/ag-ui", json=data)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    assert field in [d["field"] for d in error["details"]], error
    assert Conversation.objects.count() == 0 and Run.objects.count() == 0


def test_refused_image_names_the_part_and_leaves_no_conversation(agui, chat_agent):
    data = body(
        messages=[
            {
                "id": "1",
                "role": "user",
                "content": [
                    {"type": "text", "text": "Look"},
                    {"type": "image", "source": {"type": "url", "value": "http://x.test/a.png"}},
                ],
            }
        ]
    )
    r = agui.post(f"/api/v1/agents/{chat_agent.slug}/ag-ui", json=data)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["details"][0]["field"] == "messages[0].content"
    assert Conversation.objects.count() == 0 and Run.objects.count() == 0


def test_run_id_of_an_existing_run_is_refused(agui, chat_agent, scripted_llm):
    scripted_llm.push("One.")
    first = body("Hi")
    run(agui, chat_agent, first)
    r = agui.post(f"/api/v1/agents/{chat_agent.slug}/ag-ui", json=body("Again", run=first["runId"]))
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "runId"
    wait_for(lambda: Run.objects.filter(status="completed").count() == 1)
    assert Run.objects.count() == 1


def test_read_only_key_403(live, chat_agent, user, workspace):
    _, read_key = make_api_key(user=user, workspace=workspace, scopes=("read",))
    response = httpx.post(
        f"{live.url}/api/v1/agents/{chat_agent.slug}/ag-ui",
        json=body(),
        headers={"Authorization": f"Bearer {read_key}"},
    )
    assert response.status_code == 403
    assert Conversation.objects.count() == 0


def test_follow_up_must_answer_the_pending_frontend_calls(agui, chat_agent, scripted_llm):
    tools = [{"name": "pick_date", "description": "Ask the user for a date."}]
    scripted_llm.push(Reply(tool_calls=[ToolCall("pick_date", {}, id="p1")]))
    first = body("Book it", tools=tools)
    events = run(agui, chat_agent, first)
    assert events[-1].outcome.pending_tool_call_ids == ["p1"]
    wrong = body(
        thread=first["threadId"],
        messages=[{"id": "t", "role": "tool", "toolCallId": "nope", "content": "x"}],
    )
    r = agui.post(f"/api/v1/agents/{chat_agent.slug}/ag-ui", json=wrong)
    assert r.status_code == 400 and r.json()["error"]["details"][0]["field"] == "messages"
    assert Run.objects.get(id=first["runId"]).status == "requires_action"
    assert not Message.objects.filter(role="tool").exists()


def test_endpoint_is_in_the_openapi_schema():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    operation = schema["paths"]["/api/v1/agents/{agent}/ag-ui"]["post"]
    assert operation["operationId"] == "agents_ag_ui_run"
    body_schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body_schema["required"] == ["threadId", "runId", "messages"]


CLIENT_DIR = Path(__file__).parent / "agui_client"


def test_official_typescript_client_runs_a_frontend_tool_round_trip(
    live, key, chat_agent, scripted_llm
):
    if shutil.which("node") is None or not (CLIENT_DIR / "node_modules" / "@ag-ui").exists():
        message = "the official TypeScript client is not installed: npm ci in " + (
            "tests/conversations/agui_client"
        )
        if os.environ.get("CI"):
            pytest.fail(message + "; CI installs it and never skips this test")
        pytest.skip(message)
    scripted_llm.push(
        Reply(text="Showing it.", tool_calls=[ToolCall("show_weather", {"city": "Oslo"}, id="w1")]),
        "It is 12 degrees in Oslo.",
    )
    done = subprocess.run(
        ["node", "run.mjs", f"{live.url}/api/v1/agents/{chat_agent.slug}/ag-ui", key],
        cwd=CLIENT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["pending"] == ["w1"]
    assert result["answer"] == "It is 12 degrees in Oslo."
    assert result["events"].count("RUN_STARTED") == 2
    assert result["events"].count("RUN_FINISHED") == 2
    assert "TOOL_CALL_START" in result["events"]
    assert result["firstNew"] == ["assistant"]
    assert result["secondNew"][-1] == "assistant"
    wait_for(lambda: Run.objects.get().status == "completed")


def test_new_message_abandons_the_pending_frontend_call(agui, chat_agent, scripted_llm):
    tools = [{"name": "pick_date", "description": "Ask the user for a date."}]
    scripted_llm.push(Reply(tool_calls=[ToolCall("pick_date", {}, id="p1")]), "Fine, no date.")
    first = body("Book it", tools=tools)
    run(agui, chat_agent, first)
    second = body("Never mind", thread=first["threadId"])
    events = run(agui, chat_agent, second)
    result = next(e for e in events if e.type == EventType.TOOL_CALL_RESULT)
    assert result.tool_call_id == "p1" and "interrupted" in result.content
    text = "".join(e.delta for e in events if e.type == EventType.TEXT_MESSAGE_CONTENT)
    assert text == "Fine, no date."
    wait_for(lambda: Run.objects.get(id=first["runId"]).status == "cancelled")
    wait_for(lambda: Run.objects.get(id=second["runId"]).status == "completed")


def test_reasoning_streams_as_a_reasoning_message(agui, chat_agent, scripted_llm):
    scripted_llm.push(Reply(text="It is 4.", reasoning="two plus two makes four"))
    events = run(agui, chat_agent, body("2+2?"))
    assert types(events)[:3] == ["RUN_STARTED", "REASONING_START", "REASONING_MESSAGE_START"]
    thought = "".join(e.delta for e in events if e.type == EventType.REASONING_MESSAGE_CONTENT)
    assert thought == "two plus two makes four"
    order = types(events)
    assert order.index("REASONING_END") < order.index("TEXT_MESSAGE_START")
    assert order[order.index("REASONING_END") - 1] == "REASONING_MESSAGE_END"


def test_two_frontend_calls_in_a_row_each_resume_from_their_own_pause(
    agui, chat_agent, scripted_llm
):
    tools = [{"name": "ask_user", "description": "Ask the user something."}]
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("ask_user", {"q": "name?"}, id="q1")]),
        Reply(tool_calls=[ToolCall("ask_user", {"q": "age?"}, id="q2")]),
        "Hello Ada, 36.",
    )
    first = body("Greet me", tools=tools)
    assert run(agui, chat_agent, first)[-1].outcome.pending_tool_call_ids == ["q1"]

    def answer(call_id: str, text: str) -> list[Any]:
        data = body(
            thread=first["threadId"],
            messages=[
                {"id": str(uuid.uuid4()), "role": "tool", "toolCallId": call_id, "content": text}
            ],
            tools=tools,
        )
        return run(agui, chat_agent, data)

    second = answer("q1", "Ada")
    # Only what followed the first pause: the second call, not the first one again.
    assert [e.tool_call_id for e in second if e.type == EventType.TOOL_CALL_START] == ["q2"]
    assert second[-1].outcome.pending_tool_call_ids == ["q2"]
    third = answer("q2", "36")
    assert EventType.TOOL_CALL_START not in [e.type for e in third]
    text = "".join(e.delta for e in third if e.type == EventType.TEXT_MESSAGE_CONTENT)
    assert text == "Hello Ada, 36."
    assert {e.metadata["runId"] for e in (second[0], third[0])} == {first["runId"]}
    wait_for(lambda: Run.objects.get(id=first["runId"]).status == "completed")
