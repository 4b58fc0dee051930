"""The run lifecycle over real HTTP: queue, promote, delete, interrupt, cancel, approvals,
edit-and-rerun, regenerate, suggestions, dangling tool-call repair, max-loop stop."""

import itertools
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, Message, Run, RunEvent
from apps.conversations.services import message_create
from apps.providers.scripted import Reply, ToolCall
from tests.conversations.conftest import read_sse, wait_for

pytestmark = pytest.mark.slow


def _conversation(http, agent) -> str:
    return http.post("/api/v1/conversations", json={"agent_id": str(agent.id)}).json()["data"]["id"]


def _send(http, conv_id, content, **extra):
    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": content, **extra})
    assert r.status_code == 202, r.text
    return r.json()["data"]


def _wait_status(run_id, *statuses, timeout=15):
    return wait_for(
        lambda: (run := Run.objects.get(id=run_id)).status in statuses and run, timeout=timeout
    )


def _live_texts(conv_id):
    return list(
        Message.objects.filter(conversation_id=conv_id, superseded_at__isnull=True)
        .order_by("seq")
        .values_list("role", "text")
    )


def test_queue_promote_delete_and_serial_runs(http, chat_agent, scripted_llm):
    scripted_llm.push(Reply(text="slow answer here", first_byte_delay=1.0), "T", "second", "third")
    conv_id = _conversation(http, chat_agent)
    first = _send(http, conv_id, "one")
    _wait_status(first["id"], "running")
    second = _send(http, conv_id, "two")
    third = _send(http, conv_id, "three")
    fourth = _send(http, conv_id, "four")
    assert second["status"] == "queued" and second["message_id"] is None
    assert second["queued_content"] == "two"

    queue = http.get(f"/api/v1/conversations/{conv_id}/queue").json()["data"]
    assert [q["id"] for q in queue] == [second["id"], third["id"], fourth["id"]]
    assert http.post(f"/api/v1/runs/{third['id']}/promote").status_code == 200
    assert http.delete(f"/api/v1/runs/{fourth['id']}").status_code == 204
    queue = http.get(f"/api/v1/conversations/{conv_id}/queue").json()["data"]
    assert [q["id"] for q in queue] == [third["id"], second["id"]]
    r = http.delete(f"/api/v1/runs/{first['id']}")
    assert r.status_code == 409 and r.json()["error"]["code"] == "run_not_queued"

    _wait_status(second["id"], "completed")
    assert Run.objects.get(id=fourth["id"]).status == "cancelled"
    assert [t for _, t in _live_texts(conv_id)] == [
        "one",
        "slow answer here",
        "three",
        "second",
        "two",
        "third",
    ]
    runs = Run.objects.filter(id__in=[first["id"], third["id"], second["id"]])
    spans = sorted((r.started_at, r.finished_at) for r in runs)
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))  # serial
    # The running run announced each message queued behind it, once, in its own stream.
    first_events = read_sse(http.get(f"/api/v1/runs/{first['id']}/stream"))
    queued = [e["data"] for e in first_events if e["type"] == "run.queued"]
    assert sorted(q["queued_run_id"] for q in queued) == sorted(
        [second["id"], third["id"], fourth["id"]]
    )
    assert all(q["position"] >= 1 for q in queued)
    assert [e["type"] for e in first_events][-3:] == ["run.completed", "done", "end"]


def test_interrupt_cancels_the_active_run_first(http, chat_agent, scripted_llm):
    scripted_llm.push(Reply(text=" ".join(["x"] * 200), token_delay=0.05), "answer two", "T")
    conv_id = _conversation(http, chat_agent)
    first = _send(http, conv_id, "long one")
    wait_for(lambda: RunEvent.objects.filter(run_id=first["id"], type="answer.delta").exists())
    second = _send(http, conv_id, "stop and do this", running_run_behavior="interrupt")

    assert _wait_status(first["id"], "cancelled").status == "cancelled"
    assert _wait_status(second["id"], "completed").status == "completed"
    events = read_sse(http.get(f"/api/v1/runs/{first['id']}/stream"))
    assert [e["type"] for e in events][-3:] == ["run.cancelled", "done", "end"]
    assert events[-2]["data"]["status"] == "cancelled"


def test_cancel_a_running_run(http, chat_agent, scripted_llm):
    scripted_llm.push(Reply(text=" ".join(["y"] * 200), token_delay=0.05))
    conv_id = _conversation(http, chat_agent)
    run = _send(http, conv_id, "go")
    wait_for(lambda: RunEvent.objects.filter(run_id=run["id"], type="answer.delta").exists())
    r = http.post(f"/api/v1/runs/{run['id']}/cancel")
    assert r.status_code == 202
    assert _wait_status(run["id"], "cancelled").finished_at is not None
    r = http.post(f"/api/v1/runs/{run['id']}/cancel")
    assert r.status_code == 409 and r.json()["error"]["code"] == "run_not_cancellable"


def test_approval_pause_approve_and_reject(http, chat_agent, scripted_llm):
    chat_agent.builtin_tools = ["calculator"]
    chat_agent.tools_requiring_approval = ["calculator"]
    chat_agent.save(update_fields=["builtin_tools", "tools_requiring_approval"])
    scripted_llm.push(
        Reply(
            tool_calls=[
                ToolCall("calculator", {"expression": "2+2"}, id="a1"),
                ToolCall("calculator", {"expression": "3+3"}, id="a2"),
            ]
        ),
        "Done: 4.",
        "T",
    )
    conv_id = _conversation(http, chat_agent)
    run = _send(http, conv_id, "compute")
    paused = _wait_status(run["id"], "requires_action")
    assert [p["tool_call_id"] for p in paused.pending_approvals] == ["a1", "a2"]
    r = http.get(f"/api/v1/runs/{run['id']}")
    assert r.json()["data"]["status"] == "requires_action"

    r = http.post(
        f"/api/v1/runs/{run['id']}/approvals",
        json={"decisions": [{"tool_call_id": "a1", "approved": True}]},
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "validation_error"
    assert Run.objects.get(id=run["id"]).status == "requires_action"

    r = http.post(
        f"/api/v1/runs/{run['id']}/approvals",
        json={
            "decisions": [
                {"tool_call_id": "a1", "approved": True},
                {"tool_call_id": "a2", "approved": False},
            ]
        },
    )
    assert r.status_code == 202, r.text
    done = _wait_status(run["id"], "completed")
    assert Message.objects.get(id=done.answer_message_id).text == "Done: 4."
    tools = {
        m.tool_call_id: m.text for m in Message.objects.filter(conversation_id=conv_id, role="tool")
    }
    assert tools["a1"] == "4"
    assert "rejected" in tools["a2"]
    events = read_sse(http.get(f"/api/v1/runs/{run['id']}/stream"))
    types = [e["type"] for e in events]
    assert types.count("approval.required") == 2
    assert "run.requires_action" in types
    assert types[-1] == "end" and types.count("end") == 1
    r = http.post(
        f"/api/v1/runs/{run['id']}/approvals",
        json={"decisions": [{"tool_call_id": "a1", "approved": True}]},
    )
    assert r.status_code == 409 and r.json()["error"]["code"] == "run_not_awaiting_approval"


def test_edit_last_user_message_and_regenerate(http, chat_agent, scripted_llm):
    scripted_llm.push("first answer", "T", "edited answer", "regenerated answer")
    conv_id = _conversation(http, chat_agent)
    run = _send(http, conv_id, "original question")
    _wait_status(run["id"], "completed")

    r = http.post(
        f"/api/v1/conversations/{conv_id}/edit-last-user-message", json={"content": "new question"}
    )
    assert r.status_code == 202, r.text
    _wait_status(r.json()["data"]["id"], "completed")
    assert _live_texts(conv_id) == [("user", "new question"), ("assistant", "edited answer")]
    assert scripted_llm.requests[-1]["messages"][-1]["content"] == "new question"
    assert all(m["content"] != "original question" for m in scripted_llm.requests[-1]["messages"])

    r = http.post(f"/api/v1/conversations/{conv_id}/regenerate")
    assert r.status_code == 202
    _wait_status(r.json()["data"]["id"], "completed")
    assert _live_texts(conv_id) == [("user", "new question"), ("assistant", "regenerated answer")]
    # Superseded messages are kept for audit.
    assert Message.objects.filter(conversation_id=conv_id, superseded_at__isnull=False).count() == 3


def test_suggestions_when_enabled(http, chat_agent, scripted_llm):
    chat_agent.suggestions_enabled = True
    chat_agent.save(update_fields=["suggestions_enabled"])
    scripted_llm.push("An answer.", "A title", "1. What next?\n2. Why?\n3. How?")
    conv_id = _conversation(http, chat_agent)
    with http.stream(
        "POST", f"/api/v1/conversations/{conv_id}/messages", json={"content": "q", "stream": True}
    ) as response:
        events = read_sse(response)
    by_type = {e["type"]: e["data"] for e in events}
    assert by_type["title"] == {"title": "A title"}
    assert by_type["suggestions"] == {"suggestions": ["What next?", "Why?", "How?"]}


def test_dead_process_run_becomes_interrupted_and_dangling_calls_are_repaired(
    http, chat_agent, scripted_llm, user
):
    conv = Conversation.objects.create(workspace=chat_agent.workspace, agent=chat_agent, user=user)
    dead = Run.objects.create(
        conversation=conv,
        workspace=conv.workspace,
        agent=chat_agent,
        created_by=user,
        status="running",
        worker_id="gone-host:1:dead",
        heartbeat_at=timezone.now() - timedelta(minutes=5),
        started_at=timezone.now() - timedelta(minutes=5),
    )
    message_create(
        conversation_id=conv.id, run_id=dead.id, message={"role": "user", "content": "hi"}
    )
    message_create(
        conversation_id=conv.id,
        run_id=dead.id,
        message={
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "d1",
                    "type": "function",
                    "function": {"name": "calculator", "arguments": "{}"},
                }
            ],
        },
    )
    scripted_llm.push("Recovered.", "T")
    run = _send(http, str(conv.id), "are you there?")

    assert Run.objects.get(id=dead.id).status == "interrupted"
    _wait_status(run["id"], "completed")
    synthetic = Message.objects.get(conversation=conv, role="tool", tool_call_id="d1")
    assert synthetic.metadata["synthetic"] is True
    assert synthetic.metadata["reason"] == "interrupted"
    sent = scripted_llm.requests[0]["messages"]
    roles = [m["role"] for m in sent if m["role"] != "system"]
    assert roles == ["user", "assistant", "tool", "user"]
    dead_events = read_sse(http.get(f"/api/v1/runs/{dead.id}/stream"))
    assert [e["type"] for e in dead_events] == ["run.interrupted", "done", "end"]
    repaired = [
        e["data"]
        for e in read_sse(http.get(f"/api/v1/runs/{run['id']}/stream"))
        if e["type"] == "tool.result"
    ]
    assert [(r["tool_call_id"], r["name"], r["synthetic"]) for r in repaired] == [
        ("d1", "calculator", True)
    ]


def test_max_loops_stop(http, chat_agent, scripted_llm):
    chat_agent.builtin_tools = ["calculator"]
    chat_agent.max_loops = 2
    chat_agent.save(update_fields=["builtin_tools", "max_loops"])
    call = Reply(tool_calls=[ToolCall("calculator", {"expression": "1+1"})])
    scripted_llm.push(call, call, call, call)
    conv_id = _conversation(http, chat_agent)
    run = _send(http, conv_id, "loop")
    failed = _wait_status(run["id"], "failed")
    assert failed.error_code == "max_loops_exceeded"
    events = read_sse(http.get(f"/api/v1/runs/{run['id']}/stream"))
    assert [e["type"] for e in events][-3:] == ["run.failed", "done", "end"]
    assert events[-3]["data"]["error"]["code"] == "max_loops_exceeded"


def test_memory_mode_none_sends_only_the_current_message(http, chat_agent, scripted_llm):
    chat_agent.memory_mode = "none"
    chat_agent.save(update_fields=["memory_mode"])
    scripted_llm.push("first answer", "A title", "second answer")
    conv_id = _conversation(http, chat_agent)
    _wait_status(_send(http, conv_id, "first question")["id"], "completed")
    _wait_status(_send(http, conv_id, "second question")["id"], "completed")
    sent = [m for m in scripted_llm.requests[-1]["messages"] if m["role"] != "system"]
    assert sent == [{"role": "user", "content": "second question"}]
