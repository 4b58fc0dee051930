"""The run engine against the real providers runtime and the scripted model server over
real HTTP. The hooks are an in-memory RunHooks: the engine's whole contract with its
caller (events and persisted messages) is what these tests assert."""

import asyncio
import time
import uuid
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from apps.agents import builtin_tools
from apps.agents import context as ctx
from apps.agents.engine import (
    REJECTED_RESULT,
    SUGGESTIONS_PROMPT,
    SUMMARY_PROMPT,
    SYNTHETIC_RESULTS,
    TITLE_PROMPT,
    generate_suggestions,
    generate_title,
    repair_dangling_tool_calls,
    run_turn,
)
from apps.agents.engine_types import AgentSnapshot
from apps.core.tools import ToolContext, ToolResult, ToolSpec
from apps.providers.scripted import Reply, ToolCall
from apps.providers.types import UsageContext
from tests.providers.factories import make_scripted_provider

DELTA_TYPES = {"answer.delta", "step"}


class MemoryHooks:
    """RunHooks kept in memory: every event and every persisted message, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[dict[str, Any]] = []
        self.on_event = None

    async def emit(self, event):
        type, data = str(event.type), event.to_dict()  # the wire shape of the typed event
        self.events.append((type, data))
        if self.on_event is not None:
            self.on_event(type, data)

    async def persist_message(self, message):
        self.messages.append(message)
        return uuid.UUID(message["id"])

    def types(self, *, deltas=False):
        return [t for t, d in self.events if deltas or t not in DELTA_TYPES]

    def of(self, type):
        return [d for t, d in self.events if t == type]


def make_agent(workspace, **overrides) -> AgentSnapshot:
    fields: dict[str, Any] = {
        "agent_id": uuid.uuid4(),
        "workspace_id": workspace.id,
        "name": "Helper",
        "system_prompt": "You are a helpful agent.",
        "model_id": None,
        "temperature": None,
        "max_tokens": None,
        "reasoning": False,
        "max_loops": 6,
        "wall_clock_seconds": 30,
        "tool_ids": (),
        "skill_ids": (),
        "knowledge_base_ids": (),
        "subagent_ids": (),
        "builtin_tools": ("calculator", "current_time"),
        "tools_requiring_approval": frozenset(),
        "suggestions_enabled": False,
        "version": 1,
    }
    fields.update(overrides)
    return AgentSnapshot(**fields)


def run(agent, history, *, hooks=None, decisions=None, cancel_when=None, depth=0):
    """run_turn from a sync test (the runtime's database work uses the test connection).
    `cancel_when(type, data) -> bool` sets the cancel event from inside an emit."""
    hooks = hooks or MemoryHooks()

    async def go():
        cancel = asyncio.Event()
        if cancel_when is not None:

            def watch(type, data):
                if cancel_when(type, data):
                    cancel.set()

            hooks.on_event = watch
        return await run_turn(
            agent=agent,
            history=history,
            hooks=hooks,
            context=ToolContext(
                workspace_id=agent.workspace_id,
                user_id=None,
                agent_id=agent.agent_id,
                depth=depth,
            ),
            cancel=cancel,
            decisions=decisions,
            usage=UsageContext(workspace_id=agent.workspace_id, agent_id=agent.agent_id),
        )

    return async_to_sync(go)(), hooks


def user_message(text):
    return {"id": str(uuid.uuid4()), "role": "user", "content": text}


def chat_requests(scripted_llm):
    return [r for r in scripted_llm.requests if "messages" in r]


def tool_names(request):
    return sorted(t["function"]["name"] for t in request.get("tools") or [])


@pytest.fixture
def model(workspace, scripted_llm):
    return make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)[1]


@pytest.fixture
def extra_tools(monkeypatch):
    """Register test tools next to the built-ins (the engine offers the ones an agent
    names): `explode` raises, `nap` sleeps `seconds` and records when it ran."""
    naps: list[tuple[float, float]] = []

    async def explode(args, context):
        raise RuntimeError("boom")

    async def nap(args, context):
        start = time.monotonic()
        await asyncio.sleep(float(args.get("seconds", 0.3)))
        naps.append((start, time.monotonic()))
        return ToolResult(content=f"slept {args.get('seconds', 0.3)}")

    schema = {"type": "object", "properties": {}}
    for name, execute in (("explode", explode), ("nap", nap)):
        spec = ToolSpec(
            name=name, description=name, parameters=schema, source="builtin", execute=execute
        )
        monkeypatch.setitem(builtin_tools.BUILTIN_TOOLS, name, spec)
    return naps


def test_react_loop_with_several_tools_and_tool_errors(workspace, model, scripted_llm, extra_tools):
    agent = make_agent(workspace, builtin_tools=("calculator", "current_time", "explode"))
    scripted_llm.push(
        Reply(
            tool_calls=[
                ToolCall("calculator", {"expression": "6*7"}, id="call_1"),
                ToolCall("current_time", {"timezone": "Mars/Olympus"}, id="call_2"),
            ],
            usage=(50, 10),
        ),
        Reply(
            tool_calls=[
                ToolCall("calculator", {"expression": "1/0"}, id="call_3"),
                ToolCall("explode", {}, id="call_4"),
                ToolCall("nope", {}, id="call_5"),
                ToolCall("calculator", "{not json", id="call_6"),
            ],
            usage=(80, 12),
        ),
        Reply(text="The answer is 42.", usage=(120, 6)),
    )
    history = [user_message("What is 6 times 7?")]
    outcome, hooks = run(agent, history)

    assert outcome.status == "completed"
    assert outcome.answer_text == "The answer is 42."
    assert (outcome.input_tokens, outcome.output_tokens) == (250, 28)
    assert (outcome.error_code, outcome.pending_approvals) == ("", [])

    roles = [(m["role"], m.get("tool_call_id")) for m in hooks.messages]
    assert roles[0] == ("assistant", None)
    assert sorted(roles[1:3]) == [("tool", "call_1"), ("tool", "call_2")]
    assert roles[3] == ("assistant", None)
    assert sorted(roles[4:8]) == [("tool", f"call_{i}") for i in (3, 4, 5, 6)]
    assert roles[8] == ("assistant", None)
    results = {
        m["tool_call_id"]: (m["content"], m["metadata"]["is_error"])
        for m in hooks.messages
        if m["role"] == "tool"
    }
    assert results == {
        "call_1": ("42", False),
        "call_2": (
            "Unknown time zone 'Mars/Olympus': use an IANA name such as 'Europe/Paris'.",
            True,
        ),
        "call_3": ("Cannot evaluate '1/0': Division by zero.", True),
        "call_4": ("The tool failed: RuntimeError: boom", True),
        "call_5": ("There is no tool named 'nope'.", True),
        "call_6": (
            "The arguments are not a JSON object: call the tool again with valid JSON.",
            True,
        ),
    }
    first = hooks.messages[0]
    assert first["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "calculator", "arguments": '{"expression": "6*7"}'},
        },
        {
            "id": "call_2",
            "type": "function",
            "function": {"name": "current_time", "arguments": '{"timezone": "Mars/Olympus"}'},
        },
    ]
    assert first["metadata"] == {"usage": {"input_tokens": 50, "output_tokens": 10}}
    final = hooks.messages[-1]
    assert (final["content"], final["metadata"]) == (
        "The answer is 42.",
        {"usage": {"input_tokens": 120, "output_tokens": 6}},
    )
    assert outcome.answer_message_id == uuid.UUID(final["id"])

    # what the model saw: the tools, then the tool results after their calls
    requests = chat_requests(scripted_llm)
    assert len(requests) == 3
    assert tool_names(requests[0]) == ["calculator", "current_time", "explode"]
    second = requests[1]["messages"]
    assert second[0] == {"role": "system", "content": "You are a helpful agent."}
    assert second[1] == {"role": "user", "content": "What is 6 times 7?"}
    assert second[2]["role"] == "assistant"
    assert [tc["id"] for tc in second[2]["tool_calls"]] == ["call_1", "call_2"]
    assert [(m["role"], m["tool_call_id"], m["content"]) for m in second[3:]] == [
        ("tool", "call_1", "42"),
        ("tool", "call_2", results["call_2"][0]),
    ]
    third = requests[2]["messages"]
    assert [m["role"] for m in third] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
        "tool",
        "tool",
        "tool",
    ]
    assert [m["tool_call_id"] for m in third[6:]] == ["call_3", "call_4", "call_5", "call_6"]

    # the events, in order (deltas aside)
    assert hooks.types() == [
        "phase", "tool.call", "tool.call", "phase", "tool.result", "tool.result",
        "phase", "tool.call", "tool.call", "tool.call", "tool.call", "phase",
        "tool.result", "tool.result", "tool.result", "tool.result",
        "phase", "phase", "answer.start", "answer.done",
    ]  # fmt: skip
    assert [d["phase"] for d in hooks.of("phase")] == [
        "thinking", "tool_calling", "thinking", "tool_calling", "thinking", "answering",
    ]  # fmt: skip
    steps = [d for d in hooks.of("step") if d["kind"] == "tool_decision"]
    second_calls = [(3, "calculator"), (4, "explode"), (5, "nope"), (6, "calculator")]
    assert steps == [
        {
            "step": 1,
            "kind": "tool_decision",
            "tool_calls": [
                {"tool_call_id": "call_1", "name": "calculator"},
                {"tool_call_id": "call_2", "name": "current_time"},
            ],
        },
        {
            "step": 2,
            "kind": "tool_decision",
            "tool_calls": [{"tool_call_id": f"call_{i}", "name": n} for i, n in second_calls],
        },
    ]
    assert hooks.of("tool.call")[0] == {
        "tool_call_id": "call_1",
        "name": "calculator",
        "arguments": {"expression": "6*7"},
        "source": "builtin",
        "requires_approval": False,
    }
    assert hooks.of("tool.call")[5]["arguments"] == "{not json"
    assert {d["tool_call_id"]: d["content"] for d in hooks.of("tool.result")} == {
        k: v[0] for k, v in results.items()
    }
    message_id = final["id"]
    deltas = hooks.of("answer.delta")
    assert {d["message_id"] for d in deltas} == {message_id}
    assert "".join(d["delta"] for d in deltas) == "The answer is 42."
    assert hooks.of("answer.start") == [{"message_id": message_id}]
    assert hooks.of("answer.done") == [
        {"message_id": message_id, "content": "The answer is 42.", "citations": []}
    ]


def test_parallel_tool_calls_run_concurrently(workspace, model, scripted_llm, extra_tools):
    agent = make_agent(workspace, builtin_tools=("nap",))
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("nap", {"seconds": 0.5}, id=f"n{i}") for i in range(3)]),
        "Rested.",
    )
    outcome, hooks = run(agent, [user_message("Take three naps.")])
    assert outcome.status == "completed"
    assert len(extra_tools) == 3
    # all three overlapped: each began before any ended
    assert max(start for start, _ in extra_tools) < min(end for _, end in extra_tools)
    assert sorted(m["tool_call_id"] for m in hooks.messages if m["role"] == "tool") == [
        "n0",
        "n1",
        "n2",
    ]


def test_max_loops_stops_the_turn_after_recording_its_tool_calls(workspace, model, scripted_llm):
    agent = make_agent(workspace, max_loops=2)
    calls = [
        Reply(tool_calls=[ToolCall("calculator", {"expression": f"{i}+1"}, id=f"c{i}")])
        for i in range(3)
    ]
    scripted_llm.push(*calls, "never asked")
    outcome, hooks = run(agent, [user_message("Loop forever.")])
    assert outcome.status == "failed"
    assert outcome.error_code == "max_loops_exceeded"
    assert outcome.error_message == "The agent did not answer within 2 model calls."
    assert outcome.answer_message_id is None
    assert len(chat_requests(scripted_llm)) == 2
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in hooks.messages] == [
        ("assistant", None, ""),
        ("tool", "c0", "1"),
        ("assistant", None, ""),
        ("tool", "c1", "2"),
    ]
    assert "answer.start" not in hooks.types()


def test_wall_clock_stops_a_slow_stream_and_keeps_the_partial_answer(
    workspace, model, scripted_llm
):
    agent = make_agent(workspace, wall_clock_seconds=1)
    words = " ".join(f"w{i}" for i in range(40))
    scripted_llm.push(Reply(text=words, token_delay=0.1))
    started = time.monotonic()
    outcome, hooks = run(agent, [user_message("Talk slowly.")])
    assert time.monotonic() - started < 3
    assert outcome.status == "failed"
    assert outcome.error_code == "run_timeout"
    assert outcome.error_message == "The run did not finish within 1 seconds."
    streamed = "".join(d["delta"] for d in hooks.of("answer.delta"))
    assert 0 < len(streamed) < len(words)
    [partial] = hooks.messages
    assert partial["content"] == streamed
    assert partial["metadata"] == {"partial": True, "reason": "timeout"}
    assert outcome.answer_text == streamed
    assert outcome.answer_message_id == uuid.UUID(partial["id"])
    assert hooks.of("answer.done") == [
        {"message_id": partial["id"], "content": streamed, "citations": []}
    ]
    deadline = time.monotonic() + 3
    while scripted_llm.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted_llm.disconnects == 1  # the upstream request was closed


def test_wall_clock_stops_a_slow_tool_with_a_synthetic_result(
    workspace, model, scripted_llm, extra_tools
):
    agent = make_agent(workspace, builtin_tools=("nap",), wall_clock_seconds=1)
    scripted_llm.push(Reply(tool_calls=[ToolCall("nap", {"seconds": 10}, id="long")]), "unused")
    outcome, hooks = run(agent, [user_message("Sleep.")])
    assert (outcome.status, outcome.error_code) == ("failed", "run_timeout")
    assert extra_tools == []  # the nap never finished
    assert [(m["role"], m.get("tool_call_id")) for m in hooks.messages] == [
        ("assistant", None),
        ("tool", "long"),
    ]
    result = hooks.messages[1]
    assert result["content"] == SYNTHETIC_RESULTS["timeout"]
    assert result["metadata"] == {
        "tool_name": "nap",
        "is_error": True,
        "synthetic": True,
        "reason": "timeout",
    }
    assert hooks.of("tool.result")[-1]["synthetic"] is True
    assert repair_dangling_tool_calls([user_message("Sleep."), *hooks.messages]) == []


def test_cancel_mid_stream(workspace, model, scripted_llm):
    agent = make_agent(workspace)
    words = " ".join(f"w{i}" for i in range(60))
    scripted_llm.push(Reply(text=words, token_delay=0.05))
    deltas = []

    def third_delta(type, data):
        if type == "answer.delta":
            deltas.append(data["delta"])
        return len(deltas) == 3

    outcome, hooks = run(agent, [user_message("Go on.")], cancel_when=third_delta)
    assert outcome.status == "cancelled"
    assert outcome.error_code == ""
    [partial] = hooks.messages
    assert partial["metadata"] == {"partial": True, "reason": "cancelled"}
    assert partial["content"] == "".join(deltas) == outcome.answer_text
    assert partial["content"].split() == ["w0", "w1", "w2"]
    assert hooks.types()[-1] == "answer.done"
    deadline = time.monotonic() + 3
    while scripted_llm.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted_llm.disconnects == 1


def test_cancel_during_a_tool_records_a_synthetic_result(
    workspace, model, scripted_llm, extra_tools
):
    agent = make_agent(workspace, builtin_tools=("nap",))
    scripted_llm.push(Reply(tool_calls=[ToolCall("nap", {"seconds": 10}, id="zz")]), "unused")
    outcome, hooks = run(agent, [user_message("Sleep.")], cancel_when=lambda t, d: t == "tool.call")
    assert outcome.status == "cancelled"
    assert hooks.messages[-1]["content"] == SYNTHETIC_RESULTS["cancelled"]
    assert hooks.messages[-1]["metadata"]["reason"] == "cancelled"
    assert len(chat_requests(scripted_llm)) == 1


def _approval_turn(workspace, scripted_llm):
    agent = make_agent(workspace, tools_requiring_approval=frozenset({"calculator"}))
    scripted_llm.push(
        Reply(
            tool_calls=[
                ToolCall("calculator", {"expression": "2+2"}, id="calc"),
                ToolCall("current_time", {}, id="time"),
            ]
        )
    )
    history = [user_message("What is 2+2, and what time is it?")]
    outcome, hooks = run(agent, history)
    return agent, history, outcome, hooks


def test_approval_pauses_the_turn_then_an_approved_call_runs(workspace, model, scripted_llm):
    agent, history, outcome, hooks = _approval_turn(workspace, scripted_llm)
    assert outcome.status == "requires_action"
    assert outcome.pending_approvals == [
        {"tool_call_id": "calc", "name": "calculator", "arguments": {"expression": "2+2"}}
    ]
    assert (outcome.answer_message_id, outcome.answer_text) == (None, "")
    # the call message is stored, the call needing no approval ran, the other waits
    assert [(m["role"], m.get("tool_call_id")) for m in hooks.messages] == [
        ("assistant", None),
        ("tool", "time"),
    ]
    assert hooks.of("approval.required") == outcome.pending_approvals
    assert [d["requires_approval"] for d in hooks.of("tool.call")] == [True, False]
    assert hooks.types()[-1] == "approval.required"

    stored = [*history, *hooks.messages]
    scripted_llm.push("2+2 is 4.")
    resumed, hooks2 = run(agent, stored, decisions={"calc": True})
    assert resumed.status == "completed"
    assert resumed.answer_text == "2+2 is 4."
    assert [(m["role"], m.get("tool_call_id"), m["content"]) for m in hooks2.messages] == [
        ("tool", "calc", "4"),
        ("assistant", None, "2+2 is 4."),
    ]
    request = chat_requests(scripted_llm)[-1]["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in request] == [
        ("system", None),
        ("user", None),
        ("assistant", None),
        ("tool", "calc"),
        ("tool", "time"),
    ]
    assert len(chat_requests(scripted_llm)) == 2


def test_approval_rejected_is_told_to_the_model(workspace, model, scripted_llm):
    agent, history, _, hooks = _approval_turn(workspace, scripted_llm)
    scripted_llm.push("I was not allowed to calculate.")
    resumed, hooks2 = run(agent, [*history, *hooks.messages], decisions={"calc": False})
    assert resumed.status == "completed"
    rejected = hooks2.messages[0]
    assert (rejected["tool_call_id"], rejected["content"]) == ("calc", REJECTED_RESULT)
    assert rejected["metadata"] == {"tool_name": "calculator", "is_error": True, "rejected": True}
    request = chat_requests(scripted_llm)[-1]["messages"]
    assert request[3] == {"role": "tool", "tool_call_id": "calc", "content": REJECTED_RESULT}


def test_approval_without_a_decision_stays_paused(workspace, model, scripted_llm):
    agent, history, outcome, hooks = _approval_turn(workspace, scripted_llm)
    again, hooks2 = run(agent, [*history, *hooks.messages], decisions={"other": True})
    assert again.status == "requires_action"
    assert again.pending_approvals == outcome.pending_approvals
    assert hooks2.messages == []
    assert hooks2.types() == ["approval.required"]
    assert len(chat_requests(scripted_llm)) == 1


def _long_history(words=240):
    text = " ".join(["word"] * words)
    return [
        {"id": str(uuid.uuid4()), "role": role, "content": f"{role} {i} {text}"}
        for i, role in enumerate(["user", "assistant", "user", "assistant"])
    ]


def test_compaction_summarises_old_turns_and_persists_the_summary(workspace, model, scripted_llm):
    model.context_window = 2000  # input budget (2000 - 1000) * 0.9 = 900 tokens
    model.save()
    agent = make_agent(workspace, builtin_tools=())
    old = _long_history()
    latest = user_message("And what next?")
    scripted_llm.push("The user and the assistant exchanged four long messages.", "Next: rest.")
    outcome, hooks = run(agent, [*old, latest])

    assert outcome.status == "completed"
    assert outcome.answer_text == "Next: rest."
    summary, answer = hooks.messages
    expected_content = (
        "Summary of the earlier conversation:\n"
        "The user and the assistant exchanged four long messages.\n\n"
        "The user's latest message:\nAnd what next?"
    )
    assert summary["role"] == "user"
    assert summary["content"] == expected_content
    assert summary["metadata"] == {
        "kind": "compaction",
        "summarized_messages": 4,
        "latest_message_id": latest["id"],
    }
    assert hooks.of("compact") == [{"removed_messages": 4, "summary_message_id": summary["id"]}]
    assert hooks.types()[:3] == ["phase", "compact", "phase"]
    assert hooks.of("phase")[0] == {"phase": "compacting"}

    summarise, answer_request = chat_requests(scripted_llm)
    assert summarise["messages"][0] == {"role": "system", "content": SUMMARY_PROMPT}
    transcript = summarise["messages"][1]["content"]
    assert transcript.startswith("User: user 0 word word")
    assert "\nAssistant: assistant 3 word" in transcript
    assert "And what next?" not in transcript
    assert answer_request["messages"] == [
        {"role": "system", "content": "You are a helpful agent."},
        {"role": "user", "content": expected_content},
    ]

    # the next turn starts from the summary (the caller's history convention)
    scripted_llm.push("Sure.")
    follow_up = user_message("Thanks")
    outcome2, hooks2 = run(agent, [summary, answer, follow_up])
    assert outcome2.status == "completed"
    assert hooks2.of("compact") == []
    assert chat_requests(scripted_llm)[-1]["messages"][1:] == [
        {"role": "user", "content": expected_content},
        {"role": "assistant", "content": "Next: rest."},
        {"role": "user", "content": "Thanks"},
    ]


def test_when_compaction_fails_the_history_is_trimmed_to_the_window(workspace, model, scripted_llm):
    model.context_window = 2000
    model.save()
    agent = make_agent(workspace, builtin_tools=())
    old = _long_history()
    latest = user_message("Short question?")
    scripted_llm.push(Reply(status=400, error_message="bad"), "Short answer.")
    outcome, hooks = run(agent, [*old, latest])
    assert outcome.status == "completed"
    assert hooks.of("compact") == []
    assert [m["role"] for m in hooks.messages] == ["assistant"]
    request = chat_requests(scripted_llm)[-1]["messages"]
    # 3 x ~245 tokens fit in 900 with the latest message, 4 do not; the oldest kept
    # block would be an assistant one, which a kept history never starts with
    assert [m["content"][:11] for m in request[1:]] == ["user 2 word", "assistant 3", "Short quest"]
    count = sum(ctx.count_message_tokens(m) for m in request)
    assert count <= ctx.input_budget(
        context_window=2000, max_output_tokens=4096, agent_max_tokens=None
    )


def test_dangling_tool_call_is_repaired_before_the_next_turn(workspace, model, scripted_llm):
    agent = make_agent(workspace)
    crashed = {
        "id": str(uuid.uuid4()),
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {
                "id": "lost",
                "type": "function",
                "function": {"name": "calculator", "arguments": "{}"},
            }
        ],
    }
    history = [user_message("First"), crashed, user_message("Are you there?")]
    repairs = repair_dangling_tool_calls(history)
    assert [r["tool_call_id"] for r in repairs] == ["lost"]
    # the caller persists the repair now: it is stored after the new user message
    scripted_llm.push("Yes.")
    outcome, _ = run(agent, [*history, *repairs])
    assert outcome.status == "completed"
    request = chat_requests(scripted_llm)[-1]["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in request] == [
        ("system", None),
        ("user", None),
        ("assistant", None),
        ("tool", "lost"),
        ("user", None),
    ]
    assert request[3]["content"] == "The tool call was interrupted before it returned a result."


def test_reasoning_streams_as_step_events(workspace, model, scripted_llm):
    agent = make_agent(workspace, reasoning=True)
    scripted_llm.push(Reply(text="4", reasoning="two plus two is four", usage=(12, 3)))
    outcome, hooks = run(agent, [user_message("2+2?")])
    assert outcome.status == "completed"
    thinking = hooks.of("step")
    assert thinking and all(d["step"] == 1 and d["kind"] == "thinking" for d in thinking)
    assert "".join(d["thinking_delta"] for d in thinking) == "two plus two is four"
    assert hooks.messages[0]["metadata"] == {
        "usage": {"input_tokens": 12, "output_tokens": 3},
        "reasoning": "two plus two is four",
    }
    # thinking comes before the answer starts
    types = hooks.types(deltas=True)
    assert types.index("answer.start") > max(i for i, t in enumerate(types) if t == "step")


def test_a_streamed_answer_is_persisted_once_not_per_token(workspace, model, scripted_llm):
    agent = make_agent(workspace)
    text = " ".join(f"token{i}" for i in range(200))
    scripted_llm.push(text)
    outcome, hooks = run(agent, [user_message("Long answer please")])
    assert outcome.answer_text == text
    assert len(hooks.of("answer.delta")) >= 200
    assert len(hooks.messages) == 1


def test_text_before_tool_calls_is_its_own_answer_bubble(workspace, model, scripted_llm):
    agent = make_agent(workspace)
    scripted_llm.push(
        Reply(
            text="Let me compute.",
            tool_calls=[ToolCall("calculator", {"expression": "3*3"}, id="k")],
        ),
        "It is 9.",
    )
    outcome, hooks = run(agent, [user_message("3*3?")])
    first, _, final = hooks.messages
    assert (first["content"], [c["id"] for c in first["tool_calls"]]) == ("Let me compute.", ["k"])
    assert hooks.of("answer.done") == [
        {"message_id": first["id"], "content": "Let me compute.", "citations": []},
        {"message_id": final["id"], "content": "It is 9.", "citations": []},
    ]
    assert outcome.answer_message_id == uuid.UUID(final["id"])


def test_model_failure_is_a_failed_outcome(workspace, model, scripted_llm):
    agent = make_agent(workspace)
    scripted_llm.push(Reply(status=401, error_message="bad key"))
    outcome, hooks = run(agent, [user_message("Hi")])
    assert outcome.status == "failed"
    assert outcome.error_code == "provider_auth_failed"
    assert hooks.messages == []


def test_no_model_configured_is_a_failed_outcome(workspace, scripted_llm):
    outcome, hooks = run(make_agent(workspace), [user_message("Hi")])
    assert (outcome.status, outcome.error_code) == ("failed", "no_model_configured")
    assert hooks.events == [] and hooks.messages == []


def test_title_from_the_first_exchange(workspace, model, scripted_llm):
    agent = make_agent(workspace)
    usage = UsageContext(workspace_id=workspace.id)
    scripted_llm.push('Title: "Planning a Lisbon trip."')
    title = async_to_sync(generate_title)(
        agent=agent,
        user_text="I want to visit Lisbon in May",
        answer_text="Great idea!",
        usage=usage,
    )
    assert title == "Planning a Lisbon trip"
    request = chat_requests(scripted_llm)[-1]
    assert request["messages"] == [
        {"role": "system", "content": TITLE_PROMPT},
        {
            "role": "user",
            "content": "User: I want to visit Lisbon in May\n\nAssistant: Great idea!",
        },
    ]
    assert "tools" not in request

    scripted_llm.push(Reply(status=401))
    fallback = async_to_sync(generate_title)(
        agent=agent,
        user_text="  I want to   visit Lisbon " + "very " * 30,
        answer_text="",
        usage=usage,
    )
    assert fallback.startswith("I want to visit Lisbon very")
    assert len(fallback) <= 80 and fallback.endswith("…")


def test_suggestions_after_an_answer(workspace, model, scripted_llm):
    agent = make_agent(workspace, suggestions_enabled=True)
    usage = UsageContext(workspace_id=workspace.id)
    history = [user_message("Lisbon in May?"), {"role": "assistant", "content": "Sunny and mild."}]
    scripted_llm.push('["Which hotels?", "What to eat?", "How to get around?"]')
    suggestions = async_to_sync(generate_suggestions)(agent=agent, history=history, usage=usage)
    assert suggestions == ["Which hotels?", "What to eat?", "How to get around?"]
    request = chat_requests(scripted_llm)[-1]
    assert request["messages"] == [
        {"role": "system", "content": SUGGESTIONS_PROMPT},
        {"role": "user", "content": "User: Lisbon in May?\nAssistant: Sunny and mild."},
    ]
    scripted_llm.push(Reply(status=401))
    assert async_to_sync(generate_suggestions)(agent=agent, history=history, usage=usage) == []


def test_a_long_history_is_trimmed_to_the_window(workspace, model, scripted_llm):
    # 60 messages of ~1,500 characters (counted in a thread: over PRECOUNT_IN_THREAD_CHARS)
    model.context_window = 4000
    model.save()
    agent = make_agent(workspace, builtin_tools=())
    old = [
        {"role": ("user", "assistant")[i % 2], "content": f"m{i} " + "lorem ipsum " * 125}
        for i in range(60)
    ]
    scripted_llm.push(Reply(status=400), "ok")  # the summary fails: trimming alone
    outcome, _ = run(agent, [*old, user_message("Latest?")])
    assert outcome.status == "completed"
    request = chat_requests(scripted_llm)[-1]["messages"]
    budget = ctx.input_budget(context_window=4000, max_output_tokens=4096, agent_max_tokens=None)
    assert sum(ctx.count_message_tokens(m) for m in request) <= budget
    kept = [m["content"].split()[0] for m in request[1:-1]]
    assert kept == [f"m{i}" for i in range(60 - len(kept), 60)]  # the most recent ones
    assert kept[0].startswith("m") and int(kept[0][1:]) % 2 == 0  # starts with a user turn
    assert len(kept) >= 4
    assert request[-1] == {"role": "user", "content": "Latest?"}


def test_a_stream_dropped_mid_answer_fails_and_keeps_the_partial_answer(
    workspace, model, scripted_llm
):
    agent = make_agent(workspace)
    scripted_llm.push(Reply(text="one two three four five six", drop_after=3))
    outcome, hooks = run(agent, [user_message("Count.")])
    assert outcome.status == "failed"
    assert outcome.error_code.startswith("provider_")
    streamed = "".join(d["delta"] for d in hooks.of("answer.delta"))
    assert streamed and streamed != "one two three four five six"
    [partial] = hooks.messages
    assert (partial["content"], partial["metadata"]) == (
        streamed,
        {"partial": True, "reason": "error"},
    )
    assert hooks.types()[-1] == "answer.done"
