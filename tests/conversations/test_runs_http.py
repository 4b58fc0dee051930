"""Runs and streams over real HTTP: the platform served by uvicorn, the model by the
scripted server."""

import contextlib
import threading
import time

import httpx
import pytest

from apps.conversations.models import Conversation, Message, Run, RunEvent
from apps.providers.scripted import Reply, ToolCall
from tests.conversations.conftest import read_sse, wait_for

pytestmark = pytest.mark.slow


def _conversation(http, agent) -> str:
    r = http.post("/api/v1/conversations", json={"agent_id": str(agent.id)})
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def _types(events):
    return [e["type"] for e in events]


def _wait_status(run_id, *statuses, timeout=15):
    return wait_for(
        lambda: (run := Run.objects.get(id=run_id)).status in statuses and run, timeout=timeout
    )


def test_send_returns_202_and_the_run_answers_with_title(http, chat_agent, scripted_llm):
    scripted_llm.push("Hello there, friend.", "Greetings")
    conv_id = _conversation(http, chat_agent)

    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Hi!"})

    assert r.status_code == 202, r.text
    run = r.json()["data"]
    assert run["status"] in ("queued", "running")
    assert run["message_id"]
    done = _wait_status(run["id"], "completed")
    assert Message.objects.get(id=done.answer_message_id).text == "Hello there, friend."
    events = read_sse(http.get(f"/api/v1/runs/{run['id']}/stream"))
    types = _types(events)
    assert types[0] == "run.started"
    assert types[-4:] == ["title", "run.completed", "done", "end"]
    assert "".join(e["data"]["delta"] for e in events if e["type"] == "answer.delta") == (
        "Hello there, friend."
    )
    cursors = [e["cursor"] for e in events]
    assert cursors == list(range(cursors[0], cursors[0] + len(cursors)))
    assert events[-4]["data"] == {"title": "Greetings"}
    assert Conversation.objects.get(id=conv_id).title == "Greetings"
    assert events[-2]["data"]["status"] == "completed"
    assert events[-2]["data"]["message_id"] == str(done.answer_message_id)
    # The log holds far fewer rows than events: deltas are coalesced per batch.
    assert RunEvent.objects.filter(run_id=run["id"]).count() < len(events)


def test_stream_true_answers_with_the_event_stream(http, chat_agent, scripted_llm):
    scripted_llm.push("One two three four.", "Numbers")
    conv_id = _conversation(http, chat_agent)

    with http.stream(
        "POST",
        f"/api/v1/conversations/{conv_id}/messages",
        json={"content": "Count", "stream": True},
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = read_sse(response)

    assert _types(events)[0] == "run.started"
    assert _types(events)[-1] == "end"
    answer = "".join(e["data"]["delta"] for e in events if e["type"] == "answer.delta")
    assert answer == "One two three four."
    assert Run.objects.get(id=response.headers["X-Run-ID"]).status == "completed"


def test_resume_mid_run_and_after_completion_is_exactly_once_in_order(
    http, chat_agent, scripted_llm
):
    words = " ".join(f"w{i}" for i in range(40))
    scripted_llm.push(Reply(text=words, token_delay=0.02), "Title")
    conv_id = _conversation(http, chat_agent)
    run_id = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "go"}).json()[
        "data"
    ]["id"]

    with http.stream("GET", f"/api/v1/runs/{run_id}/stream") as first:
        part1 = read_sse(first, stop_type=None, limit=8)
    assert len(part1) == 8
    last = part1[-1]["cursor"]
    with http.stream(
        "GET", f"/api/v1/runs/{run_id}/stream", headers={"Last-Event-ID": str(last)}
    ) as second:
        part2 = read_sse(second)
    assert Run.objects.get(id=run_id).status == "completed"

    whole = read_sse(http.get(f"/api/v1/runs/{run_id}/stream?cursor=-1"))
    assert [e["cursor"] for e in part1 + part2] == [e["cursor"] for e in whole]
    assert part1 + part2 == whole
    answer = "".join(e["data"]["delta"] for e in whole if e["type"] == "answer.delta")
    assert answer == words
    # Resuming after the end replays what follows the cursor only.
    tail = read_sse(http.get(f"/api/v1/runs/{run_id}/stream?cursor={whole[-3]['cursor']}"))
    assert tail == whole[-2:]


def test_stream_errors(http, chat_agent, outsider):
    conv_id = _conversation(http, chat_agent)
    r = http.get(f"/api/v1/conversations/{conv_id}/stream?cursor=abc")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
    r = http.get(f"/api/v1/conversations/{conv_id}/stream", headers={"Last-Event-ID": "-2"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor"
    r = http.get(f"/api/v1/conversations/{conv_id}/stream?cursor=2")
    assert r.status_code == 404 and r.json()["error"]["code"] == "no_recent_assistant_message"
    r = http.get("/api/v1/conversations/00000000-0000-0000-0000-000000000000/stream?cursor=1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
    r = httpx.get(f"{http.base_url}/api/v1/conversations/{conv_id}/stream?cursor=-1")
    assert r.status_code == 401


def test_tools_several_and_a_tool_error_then_answer(http, chat_agent, scripted_llm):
    chat_agent.builtin_tools = ["calculator", "current_time"]
    chat_agent.save(update_fields=["builtin_tools"])
    scripted_llm.push(
        Reply(
            tool_calls=[
                ToolCall("calculator", {"expression": "6*7"}, id="c1"),
                ToolCall("calculator", {"expression": "1/0"}, id="c2"),
                ToolCall("current_time", {}, id="c3"),
            ]
        ),
        "The answer is 42.",
        "Math",
    )
    conv_id = _conversation(http, chat_agent)
    with http.stream(
        "POST",
        f"/api/v1/conversations/{conv_id}/messages",
        json={"content": "6*7?", "stream": True},
    ) as response:
        events = read_sse(response)

    calls = [e["data"] for e in events if e["type"] == "tool.call"]
    results = {e["data"]["tool_call_id"]: e["data"] for e in events if e["type"] == "tool.result"}
    assert [c["tool_call_id"] for c in calls] == ["c1", "c2", "c3"]
    assert results["c1"]["content"] == "42" and results["c1"]["is_error"] is False
    assert results["c2"]["is_error"] is True
    assert results["c3"]["is_error"] is False
    assert events[-2]["data"]["status"] == "completed"
    roles = list(
        Message.objects.filter(conversation_id=conv_id)
        .order_by("seq")
        .values_list("role", flat=True)
    )
    assert roles == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    # The second model call saw the three results.
    second = scripted_llm.requests[1]["messages"]
    assert [m["role"] for m in second][-4:] == ["assistant", "tool", "tool", "tool"]


def test_open_streams_hold_no_thread(http, live, chat_agent, scripted_llm):
    """An open SSE stream holds no OS thread of the server (apps/core/asgi.py): 30 idle
    streams open at once add no thread per stream, and each still answers live."""
    conv_id = _conversation(http, chat_agent)
    before = threading.active_count()
    with contextlib.ExitStack() as stack:
        responses = []
        for _ in range(30):
            client = stack.enter_context(
                httpx.Client(base_url=live.url, cookies=http.cookies, timeout=30)
            )
            response = stack.enter_context(
                client.stream("GET", f"/api/v1/conversations/{conv_id}/stream")
            )
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            responses.append(response)
        during = threading.active_count()
        # The event loop's shared pool may start a few threads; one per stream would be 30.
        assert during - before < 10, (before, during)

        scripted_llm.push("Everyone hears this.", "Shared")
        r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Hi"})
        assert r.status_code == 202, r.text
        for response in (responses[0], responses[-1]):
            events = read_sse(response, stop_type="done")
            assert "".join(e["data"]["delta"] for e in events if e["type"] == "answer.delta") == (
                "Everyone hears this."
            )


def test_stream_from_the_start_of_a_conversation_that_never_ran(
    http, live, chat_agent, scripted_llm
):
    """`cursor=-1` opens the live stream of a new conversation (the console's test chat
    does) and its first run's events arrive on it; a resume point in a conversation that
    never ran is a 404."""
    conv_id = _conversation(http, chat_agent)
    r = http.get(f"/api/v1/conversations/{conv_id}/stream?cursor=3")
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "no_recent_assistant_message"
    with (
        httpx.Client(base_url=live.url, cookies=http.cookies, timeout=30) as client,
        client.stream("GET", f"/api/v1/conversations/{conv_id}/stream?cursor=-1") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        scripted_llm.push("First words.", "First")
        sent = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Hi"})
        assert sent.status_code == 202, sent.text
        events = read_sse(response, stop_type="end")
    assert "".join(e["data"]["delta"] for e in events if e["type"] == "answer.delta") == (
        "First words."
    )


def test_an_open_stream_ends_when_the_server_stops(http, live, chat_agent):
    """A stream waiting for events does not hold the server forever: on shutdown it is
    closed after the grace period (`serve` gives uvicorn one too), and its client sees the
    end of the response, to resume elsewhere from its last event."""
    conv_id = _conversation(http, chat_agent)
    with (
        httpx.Client(base_url=live.url, cookies=http.cookies, timeout=30) as client,
        client.stream("GET", f"/api/v1/conversations/{conv_id}/stream?cursor=-1") as response,
    ):
        assert response.status_code == 200
        started = time.monotonic()
        stopper = threading.Thread(target=live.stop)
        stopper.start()
        with contextlib.suppress(httpx.HTTPError):
            for _ in response.iter_bytes():
                pass
        stopper.join(timeout=15)
        assert not stopper.is_alive()
        assert not live.thread.is_alive()
        assert time.monotonic() - started < 10
