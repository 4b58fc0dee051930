"""The run engine's pure parts: the calculator, history normalization and trimming,
dangling tool-call repair, suggestion parsing."""

import asyncio
import uuid

import pytest

from apps.agents import context as ctx
from apps.agents.builtin_tools import (
    CALCULATOR,
    CURRENT_TIME,
    CalculatorError,
    evaluate,
    format_number,
    subagent_tool_name,
)
from apps.agents.engine import parse_suggestions, repair_dangling_tool_calls
from apps.core.tools import ToolContext

CTX = ToolContext(workspace_id=uuid.uuid4(), user_id=None)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2^10", "1024"),
        ("2 ** -1", "0.5"),
        ("7 // 2", "3"),
        ("7 % 4", "3"),
        ("-(3 - 5)", "2"),
        ("sqrt(2) * sqrt(2)", "2"),
        ("round(pi, 4)", "3.1416"),
        ("log(8, 2)", "3"),
        ("factorial(20)", "2432902008176640000"),
        ("max(3, 9, 4) - min(3, 9, 4)", "6"),
        ("0.1 + 0.2", "0.3"),
        ("12 × 3 ÷ 4", "9"),
        ("10 ** 30", "1000000000000000000000000000000"),
    ],
)
def test_calculator_evaluates_arithmetic(expression, expected):
    assert format_number(evaluate(expression)) == expected


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os').system('true')", "Unsupported syntax: Call."),
        ("__import__('os')", "Unknown function '__import__'."),
        ("(1).__class__", "Unsupported syntax: Attribute."),
        ("open('/etc/passwd')", "Unknown function 'open'."),
        ("x + 1", "Unknown name 'x'."),
        ("[1, 2]", "Unsupported syntax: List."),
        ("lambda: 1", "Unsupported syntax: Lambda."),
        ("'a' * 3", "Only real numbers are supported."),
        ("True + 1", "Only real numbers are supported."),
        ("1 / 0", "Division by zero."),
        ("9 ** 9 ** 9", "The result is too large."),
        ("10.0 ** 400", "The result is too large."),
        ("factorial(100000)", "factorial() takes a whole number from 0 to 1000."),
        ("round(5, -100000)", "round() takes a whole number of digits up to 100."),
        ("sqrt(-1)", "sqrt(): math domain error."),
        ("sqrt(1, 2)", "Wrong arguments for sqrt()."),
        ("1 +", "The expression is not valid arithmetic."),
        ("", "The expression is empty."),
        ("1+" * 600 + "1", "The expression is longer than 1000 characters."),
        ("1+" * 200 + "1", "The expression is too long."),
        ("1 < 2", "Unsupported syntax: Compare."),
    ],
)
def test_calculator_refuses_what_is_not_arithmetic(expression, message):
    with pytest.raises(CalculatorError) as raised:
        evaluate(expression)
    assert str(raised.value) == message


def test_calculator_tool_returns_errors_as_results():
    ok = asyncio.run(CALCULATOR.execute({"expression": "6*7"}, CTX))
    assert (ok.content, ok.is_error, ok.data) == (
        "42",
        False,
        {"expression": "6*7", "result": "42"},
    )
    bad = asyncio.run(CALCULATOR.execute({"expression": "1/0"}, CTX))
    assert (bad.content, bad.is_error) == ("Cannot evaluate '1/0': Division by zero.", True)
    missing = asyncio.run(CALCULATOR.execute({}, CTX))
    assert (missing.content, missing.is_error) == ("Give the expression as a string.", True)


def test_current_time_tool_in_a_time_zone_and_an_unknown_one():
    result = asyncio.run(CURRENT_TIME.execute({"timezone": "Asia/Tokyo"}, CTX))
    assert result.is_error is False
    assert result.data["iso"].endswith("+09:00")
    assert (
        result.content == f"{result.data['iso']} ({result.data['weekday']}, time zone Asia/Tokyo)"
    )
    bad = asyncio.run(CURRENT_TIME.execute({"timezone": "Mars/Olympus"}, CTX))
    assert bad.is_error is True
    assert bad.content == (
        "Unknown time zone 'Mars/Olympus': use an IANA name such as 'Europe/Paris'."
    )


def test_subagent_tool_names_are_what_model_apis_accept():
    assert subagent_tool_name("travel-planner") == "ask_travel_planner"
    assert subagent_tool_name("a" * 100) == "ask_" + "a" * 60
    assert subagent_tool_name("é.x y") == "ask__x_y"


def _call(call_id, name="calculator"):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}


def test_repair_gives_one_interrupted_result_per_dangling_call():
    history = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [_call("a"), _call("b", "current_time")],
        },
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        {"role": "user", "content": "still there?"},
    ]
    repairs = repair_dangling_tool_calls(history)
    assert len(repairs) == 1
    repair = repairs[0]
    uuid.UUID(repair.pop("id"))
    assert repair == {
        "role": "tool",
        "tool_call_id": "b",
        "content": "The tool call was interrupted before it returned a result.",
        "metadata": {
            "synthetic": True,
            "reason": "interrupted",
            "tool_name": "current_time",
            "is_error": True,
        },
    }
    assert repair_dangling_tool_calls([*history, repairs[0]]) == []


def test_normalize_moves_late_results_after_their_call_and_drops_orphans():
    call_message = {"role": "assistant", "content": "", "tool_calls": [_call("a"), _call("b")]}
    late_user = {"role": "user", "content": "next"}
    late_result = {"role": "tool", "tool_call_id": "b", "content": "late"}
    history = [
        {"role": "user", "content": "q"},
        call_message,
        {"role": "tool", "tool_call_id": "a", "content": "1"},
        late_user,
        late_result,
        {"role": "tool", "tool_call_id": "zzz", "content": "orphan"},
    ]
    out = ctx.normalize_history(history)
    assert [m.get("tool_call_id") or m["content"] for m in out] == ["q", "", "a", "b", "next"]
    assert out[3] is late_result


def test_normalize_fills_a_placeholder_for_a_call_left_behind():
    history = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "tool_calls": [_call("a")]},
        {"role": "user", "content": "next"},
    ]
    out = ctx.normalize_history(history)
    assert out[2] == {
        "role": "tool",
        "tool_call_id": "a",
        "content": ctx.INTERRUPTED_RESULT,
        "metadata": {"synthetic": True, "reason": "interrupted"},
    }
    # ...but not for the calls of a turn paused at its end (they await approval)
    paused = history[:2]
    assert ctx.normalize_history(paused) == paused
    assert ctx.unanswered_tool_calls(paused) == [_call("a")]


def _msg(role, words, **extra):
    return {"role": role, "content": " ".join(["word"] * words), **extra}


def test_trim_keeps_the_current_turn_and_recent_blocks_without_splitting_tool_results():
    def count(message):
        return len(str(message.get("content") or "").split()) + 10 * len(
            message.get("tool_calls") or []
        )

    old_user = _msg("user", 50)
    old_answer = _msg("assistant", 50)
    user = _msg("user", 5)
    calls = {"role": "assistant", "content": "", "tool_calls": [_call("a"), _call("b")]}
    result_a = {"role": "tool", "tool_call_id": "a", "content": " ".join(["r"] * 30)}
    result_b = {"role": "tool", "tool_call_id": "b", "content": "r"}
    answer = _msg("assistant", 5)
    latest = _msg("user", 5)
    history = [old_user, old_answer, user, calls, result_a, result_b, answer, latest]

    # latest (5) + answer (5) + the tool block (20 + 30 + 1) + user (5) = 66
    kept = ctx.trim_history(history, budget=66, count=count)
    assert kept.messages == [user, calls, result_a, result_b, answer, latest]
    assert (kept.dropped, kept.tokens) == (2, 66)
    # one token less: the block still fits but not its user message, and a kept history
    # never starts with an assistant block: only the current turn is left
    kept = ctx.trim_history(history, budget=65, count=count)
    assert kept.messages == [latest]
    assert (kept.dropped, kept.tokens) == (7, 5)
    # the block does not fit: it is never split (result_b alone would fit)
    kept = ctx.trim_history(history, budget=60, count=count)
    assert kept.messages == [latest]

    kept = ctx.trim_history(history, budget=10_000, count=count)
    assert kept.messages == history
    assert kept.dropped == 0


def test_trim_keeps_a_compaction_summary_first_when_it_fits():
    def count(message):
        return len(str(message.get("content") or "").split())

    summary = _msg("user", 20, metadata={"kind": "compaction"})
    middle = [_msg("assistant", 30), _msg("user", 30), _msg("assistant", 30)]
    latest = _msg("user", 5)
    history = [summary, *middle, latest]
    # summary (20) + latest (5) + the last assistant (30) fit, its user message does not;
    # after the summary (a user message) an assistant block may come first
    kept = ctx.trim_history(history, budget=60, count=count)
    assert kept.messages == [summary, middle[2], latest]
    kept = ctx.trim_history(history, budget=54, count=count)
    assert kept.messages == [summary, latest]
    kept = ctx.trim_history(history, budget=90, count=count)
    assert kept.messages == [summary, middle[1], middle[2], latest]


def test_the_current_turn_is_kept_even_over_budget():
    def count(message):
        return 100

    history = [_msg("user", 1), _msg("assistant", 1), _msg("user", 1)]
    kept = ctx.trim_history(history, budget=10, count=count)
    assert kept.messages == [history[2]]


def test_input_budget_reserves_output_and_a_margin():
    assert ctx.input_budget(
        context_window=10_000, max_output_tokens=2000, agent_max_tokens=None
    ) == int(8000 * 0.9)
    assert ctx.input_budget(
        context_window=10_000, max_output_tokens=2000, agent_max_tokens=500
    ) == int(9500 * 0.9)
    # the reserve is at most half the window
    assert (
        ctx.input_budget(context_window=1000, max_output_tokens=4096, agent_max_tokens=None) == 450
    )


def test_summary_content_embeds_the_latest_user_message():
    assert ctx.summary_content(" The user plans a trip. ", "And hotels?") == (
        "Summary of the earlier conversation:\nThe user plans a trip.\n\n"
        "The user's latest message:\nAnd hotels?"
    )
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    parts = ctx.summary_content("S", [{"type": "text", "text": "What is this?"}, image])
    assert parts == [
        {
            "type": "text",
            "text": "Summary of the earlier conversation:\nS\n\nThe user's latest message:\n",
        },
        {"type": "text", "text": "What is this?"},
        image,
    ]


def test_transcript_keeps_the_first_and_latest_lines_when_too_long():
    history = [{"role": "user", "content": f"message number {i}"} for i in range(200)]
    text = ctx.render_transcript(history, max_tokens=40)
    lines = text.splitlines()
    assert lines[0] == "User: message number 0"
    assert lines[1] == "[…]"
    assert lines[-1] == "User: message number 199"
    assert len(lines) < 20


def test_provider_message_keeps_only_what_providers_accept():
    message = {
        "id": "x",
        "role": "assistant",
        "content": "",
        "tool_calls": [_call("a")],
        "metadata": {"usage": {}},
    }
    assert ctx.provider_message(message) == {
        "role": "assistant",
        "content": None,
        "tool_calls": [_call("a")],
    }


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            '["How far is it?", "What does it cost?", "When is it open?"]',
            ["How far is it?", "What does it cost?", "When is it open?"],
        ),
        ('Sure:\n```json\n["A?", "B?", "C?", "D?"]\n```', ["A?", "B?", "C?"]),
        ("1. First?\n2) Second?\n- Third?\n", ["First?", "Second?", "Third?"]),
        ('["Same?", "Same?", 3, "Other?"]', ["Same?", "Other?"]),
        ("", []),
    ],
)
def test_parse_suggestions(reply, expected):
    assert parse_suggestions(reply) == expected
