"""The code_interpreter tool over real HTTP: the workspace policy API, an agent run whose
scripted model calls the tool (the sandbox runs real code), the file it wrote downloaded
through the files API, the audit trail, and a skill's script run read-only."""

import base64

import pytest
from django.urls import reverse

from apps.agents.models import CodeExecution, CodeInterpreterPolicy
from apps.conversations.models import Run
from apps.files.models import File
from apps.providers.models import ProviderModel
from apps.providers.scripted import Reply, ToolCall
from apps.skills.services import skill_upload
from apps.users.choices import Role
from apps.users.models import AuditEvent, Membership
from tests.agents.factories import actor_for, make_agent
from tests.conversations.conftest import read_sse, wait_for
from tests.files.conftest import make_png
from tests.helpers import assert_error
from tests.providers.factories import make_scripted_provider
from tests.skills.factories import skill_zip
from tests.users.factories import UserFactory

pytestmark = pytest.mark.slow


def _url(workspace):
    return f"/api/v1/workspaces/{workspace.id}/code-interpreter"


def _enable(workspace, **limits):
    CodeInterpreterPolicy.objects.update_or_create(
        workspace=workspace, defaults={"enabled": True, **limits}
    )


def _conversation(http, agent) -> str:
    r = http.post("/api/v1/conversations", json={"agent_id": str(agent.id)})
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def _finished(run_id, timeout=60) -> Run:
    return wait_for(
        lambda: (
            (run := Run.objects.get(id=run_id)).status in ("completed", "failed", "requires_action")
            and run
        ),
        timeout=timeout,
    )


def test_policy_is_off_by_default_and_only_admins_change_it(
    api, workspace, user, outsider, anon, client_for
):
    r = api.get(_url(workspace))
    assert r.status_code == 200
    assert r.json()["data"]["enabled"] is False
    assert anon.get(_url(workspace)).status_code == 401
    assert_error(outsider.get(_url(workspace)), 404, "workspace_not_found")
    assert_error(
        outsider.patch(_url(workspace), {"enabled": True}, format="json"),
        404,
        "workspace_not_found",
    )

    member = UserFactory(email="bob@example.com")
    Membership.objects.create(workspace=workspace, user=member, role=Role.MEMBER)
    client = client_for(member)
    r = client.patch(
        _url(workspace), {"enabled": True}, format="json", HTTP_X_WORKSPACE_ID=str(workspace.id)
    )
    assert_error(r, 403, "forbidden")
    assert not CodeInterpreterPolicy.objects.filter(workspace=workspace, enabled=True).exists()

    body = assert_error(
        api.patch(_url(workspace), {"wall_seconds": 100000}, format="json"),
        400,
        "validation_error",
    )
    assert body["error"]["details"][0]["field"] == "wall_seconds"

    r = api.patch(_url(workspace), {"enabled": True, "wall_seconds": 20}, format="json")
    assert r.status_code == 200, r.content
    assert r.json()["data"]["enabled"] is True
    assert r.json()["data"]["wall_seconds"] == 20
    event = AuditEvent.objects.get(action="code_interpreter.policy")
    assert event.workspace_id == workspace.id
    assert event.metadata == {"enabled": True, "wall_seconds": 20}


def test_the_tool_is_not_offered_while_the_workspace_has_it_off(
    http, workspace, user, scripted_llm
):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(workspace=workspace, user=user, builtin_tools=["code_interpreter"])
    conv_id = _conversation(http, agent)
    scripted_llm.push("No tools.", "Title")
    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Hi"})
    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    assert "tools" not in scripted_llm.requests[0] or all(
        t["function"]["name"] != "code_interpreter" for t in scripted_llm.requests[0]["tools"]
    )
    assert CodeExecution.objects.count() == 0


def test_an_agent_run_computes_writes_a_file_and_the_user_downloads_it(
    http, workspace, user, scripted_llm
):
    _enable(workspace)
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(workspace=workspace, user=user, builtin_tools=["code_interpreter"])
    conv_id = _conversation(http, agent)
    code = (
        "import csv\nrows = [(n, n * n) for n in range(1, 6)]\n"
        "with open('squares.csv', 'w', newline='') as f:\n"
        "    csv.writer(f).writerows(rows)\n"
        "print('rows', len(rows))\nsum(sq for _, sq in rows)"
    )
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("code_interpreter", {"code": code})]),
        "The sum of the first five squares is 55.",
        "Squares",
    )

    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Sum squares"})

    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    tool_message = next(m for m in scripted_llm.requests[1]["messages"] if m["role"] == "tool")
    assert "stdout:\nrows 5" in tool_message["content"]
    assert "result: 55" in tool_message["content"]
    listed = http.get(f"/api/v1/files?conversation_id={conv_id}&origin=agent").json()["data"]
    assert [f["path"] for f in listed] == ["squares.csv"]
    download = http.get(listed[0]["content_url"])
    assert download.status_code == 200
    assert download.content.replace(b"\r\n", b"\n") == b"1,1\n2,4\n3,9\n4,16\n5,25\n"
    assert f"/api/v1/files/{listed[0]['id']}/content" in tool_message["content"]
    events = read_sse(http.get(f"/api/v1/runs/{run.id}/stream"))
    results = [e["data"] for e in events if e["type"] == "tool.result"]
    assert results[0]["name"] == "code_interpreter"
    assert results[0]["is_error"] is False
    execution = CodeExecution.objects.get()
    assert (execution.status, execution.run_id, execution.agent_id) == (
        "succeeded",
        run.id,
        agent.id,
    )
    audit = AuditEvent.objects.get(action="code_interpreter.execute")
    assert audit.workspace_id == workspace.id
    assert audit.target_id == str(execution.id)
    assert audit.metadata["status"] == "ok"
    assert audit.metadata["files"] == ["squares.csv"]
    assert audit.metadata["code"] == code


def test_a_hostile_call_is_a_tool_error_and_the_run_goes_on(http, workspace, user, scripted_llm):
    _enable(workspace, wall_seconds=3)
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(workspace=workspace, user=user, builtin_tools=["code_interpreter"])
    conv_id = _conversation(http, agent)
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("code_interpreter", {"code": "while True:\n    pass"})]),
        Reply(tool_calls=[ToolCall("code_interpreter", {"code": "open('/etc/x', 'w')"})]),
        "Both failed.",
        "T",
    )
    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Go"})
    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    first = next(m for m in scripted_llm.requests[1]["messages"] if m["role"] == "tool")
    assert first["content"].startswith(("Error (timeout):", "Error (cpu_limit):"))
    second = [m for m in scripted_llm.requests[2]["messages"] if m["role"] == "tool"][-1]
    assert second["content"].startswith("Error (error): OSError: [Errno 30] Read-only")
    assert sorted(CodeExecution.objects.values_list("status", flat=True)) == ["failed"] * 2
    assert AuditEvent.objects.filter(action="code_interpreter.execute").count() == 2


def test_approval_can_be_required(http, workspace, user, scripted_llm):
    _enable(workspace, require_approval=True)
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(workspace=workspace, user=user, builtin_tools=["code_interpreter"])
    conv_id = _conversation(http, agent)
    scripted_llm.push(Reply(tool_calls=[ToolCall("code_interpreter", {"code": "1 + 1"})]))
    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Go"})
    run = _finished(r.json()["data"]["id"])
    assert run.status == "requires_action"
    assert CodeExecution.objects.count() == 0


def test_a_skill_script_runs_read_only_with_the_workspace(http, workspace, user, scripted_llm):
    _enable(workspace)
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    script = (
        "import sys\nprint('extracting', *sys.argv[1:])\n"
        "open('extracted.txt', 'w').write('from the skill')\n"
        "try:\n    open('/skill/scripts/new.py', 'w').write('x')\n"
        "except OSError as exc:\n    print('skill files are', exc.strerror)\n"
    )
    version = skill_upload(
        actor=actor_for(user=user, workspace=workspace),
        data=skill_zip(**{"pdf-tools/scripts/extract.py": script}),
    )
    agent = make_agent(
        workspace=workspace,
        user=user,
        builtin_tools=["code_interpreter"],
        skill_version_ids=[str(version.id)],
    )
    conv_id = _conversation(http, agent)
    scripted_llm.push(
        Reply(
            tool_calls=[
                ToolCall(
                    "skill_script_run",
                    {"skill": "pdf-tools", "script": "scripts/extract.py", "args": ["a.pdf"]},
                )
            ]
        ),
        "Extracted.",
        "T",
    )
    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Extract"})
    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    tool_names = [t["function"]["name"] for t in scripted_llm.requests[0]["tools"]]
    assert "skill_script_run" in tool_names
    tool_message = next(m for m in scripted_llm.requests[1]["messages"] if m["role"] == "tool")
    assert "extracting a.pdf" in tool_message["content"]
    assert "skill files are Read-only file system" in tool_message["content"]
    listed = http.get(f"/api/v1/files?conversation_id={conv_id}&origin=agent").json()["data"]
    assert [f["path"] for f in listed] == ["extracted.txt"]
    assert AuditEvent.objects.get(action="skill_script.run").metadata["script"] == (
        "scripts/extract.py"
    )


@pytest.mark.parametrize("vision", [True, False])
def test_an_image_the_code_writes_is_shown_and_seen_by_a_model_with_vision(
    http, workspace, user, scripted_llm, vision
):
    _enable(workspace)
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    if not vision:
        ProviderModel.objects.filter(name="scripted-chat").update(capabilities=["tools"])
    agent = make_agent(workspace=workspace, user=user, builtin_tools=["code_interpreter"])
    conv_id = _conversation(http, agent)
    png = make_png(3, 2)
    code = (
        "import base64\n"
        f"data = base64.b64decode({base64.b64encode(png).decode()!r})\n"
        "open('chart.png', 'wb').write(data)\n"
        "open('notes.txt', 'w').write('not an image')"
    )
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("code_interpreter", {"code": code})]),
        "A red chart.",
        "Chart",
    )

    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Draw"})

    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    image = File.objects.get(conversation_id=conv_id, path="chart.png")
    url = f"/api/v1/files/{image.id}/content"
    # The model reads the text listing either way; the image itself only with vision.
    follow_up = scripted_llm.requests[1]["messages"]
    tool_index = next(i for i, m in enumerate(follow_up) if m["role"] == "tool")
    assert url in follow_up[tool_index]["content"]
    image_parts = [
        part
        for m in follow_up
        if isinstance(m["content"], list)
        for part in m["content"]
        if part.get("type") == "image_url"
    ]
    if vision:
        assert follow_up[tool_index + 1]["role"] == "user"
        assert image_parts == [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
            }
        ]
        assert {"type": "text", "text": "chart.png:"} in follow_up[tool_index + 1]["content"]
    else:
        assert image_parts == []
        assert follow_up[tool_index + 1 :] == []
    # The tool.result event carries the image (and only the image) for the chat.
    events = read_sse(http.get(f"/api/v1/runs/{run.id}/stream"))
    result = next(e["data"] for e in events if e["type"] == "tool.result")
    assert result["images"] == [{"file_id": str(image.id), "path": "chart.png", "url": url}]
    download = http.get(url)
    assert download.status_code == 200
    assert download.content == png
    # The console chat shows it under the tool call, through the same session.
    page = http.get(reverse("console:conversation", args=[conv_id]))
    assert page.status_code == 200
    assert f'<img src="{url}" alt="chart.png"' in page.text
