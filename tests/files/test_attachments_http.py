"""Attachments the agent reads and the agent's file workspace, over real HTTP: the
platform served by uvicorn, the model by the scripted server (what it received is
asserted), the files on the local file system and on a real S3-compatible server."""

import base64

import httpx
import openai
import pytest

from apps.conversations.models import Message, Run
from apps.files.models import File
from apps.providers.models import ProviderModel
from apps.providers.scripted import Reply, ToolCall
from tests.agents.factories import make_agent
from tests.conversations.conftest import read_sse, wait_for
from tests.files.conftest import make_png, upload
from tests.knowledge.samples import make_pdf
from tests.providers.factories import make_scripted_provider
from tests.users.factories import make_api_key

pytestmark = pytest.mark.slow


def _conversation(http, agent) -> str:
    r = http.post("/api/v1/conversations", json={"agent_id": str(agent.id)})
    assert r.status_code == 201, r.text
    return r.json()["data"]["id"]


def _send(http, conv_id, content, *file_ids):
    return http.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={"content": content, "attachments": [{"file_id": f} for f in file_ids]},
    )


def _finished(run_id, timeout=30) -> Run:
    return wait_for(
        lambda: (run := Run.objects.get(id=run_id)).status in ("completed", "failed") and run,
        timeout=timeout,
    )


def _last_user(body) -> dict:
    return [m for m in body["messages"] if m["role"] == "user"][-1]


def _no_vision():
    ProviderModel.objects.filter(name="scripted-chat").update(capabilities=["tools"])


def test_image_attachment_reaches_the_model_as_an_image_part(
    http, chat_agent, scripted_llm, storage
):
    png = make_png()
    file_id = upload(http, "photo.png", png, "image/png").json()["data"]["id"]
    conv_id = _conversation(http, chat_agent)
    scripted_llm.push("A red square.", "Red")

    r = _send(http, conv_id, "What is in the picture?", file_id)

    assert r.status_code == 202, r.text
    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    assert _last_user(scripted_llm.requests[0])["content"] == [
        {"type": "text", "text": "What is in the picture?"},
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
        },
    ]
    message = Message.objects.get(id=run.message_id)
    assert message.attachments == [
        {
            "file_id": file_id,
            "name": "photo.png",
            "content_type": "image/png",
            "kind": "image",
            "size": len(png),
        }
    ]
    assert File.objects.get(id=file_id).conversation_id is not None


def test_model_without_vision_gets_a_clear_400_for_an_image(http, chat_agent, scripted_llm):
    _no_vision()
    file_id = upload(http, "photo.png", make_png(), "image/png").json()["data"]["id"]
    conv_id = _conversation(http, chat_agent)

    r = _send(http, conv_id, "Look", file_id)

    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "model_without_vision"
    assert error["details"][0]["field"] == "attachments[0]"
    assert "photo.png" in error["message"]
    assert Message.objects.filter(conversation_id=conv_id).count() == 0
    assert Run.objects.filter(conversation_id=conv_id).count() == 0
    assert scripted_llm.requests == []

    r = http.post(
        f"/api/v1/conversations/{conv_id}/messages",
        json={
            "content": [
                {"type": "text", "text": "Look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ]
        },
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "model_without_vision"
    assert r.json()["error"]["details"][0]["field"] == "content"


def test_pdf_attachment_text_reaches_the_model(http, chat_agent, scripted_llm, storage):
    pdf = make_pdf(["The launch code word is PELICAN-42.", "Second page: budget notes."])
    file_id = upload(http, "brief.pdf", pdf, "application/pdf").json()["data"]["id"]
    conv_id = _conversation(http, chat_agent)
    scripted_llm.push("The code word is PELICAN-42.", "Code")

    r = _send(http, conv_id, "What is the code word?", file_id)

    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    parts = _last_user(scripted_llm.requests[0])["content"]
    assert parts[0] == {"type": "text", "text": "What is the code word?"}
    assert parts[1]["type"] == "text"
    assert parts[1]["text"].startswith(f'<attachment file_id="{file_id}" name="brief.pdf">')
    assert "The launch code word is PELICAN-42." in parts[1]["text"]
    assert "Second page: budget notes." in parts[1]["text"]

    # Export and share pages show the attachment.
    exported = http.get(f"/api/v1/conversations/{conv_id}/export?as=markdown").text
    assert "What is the code word?\n\nAttachments: brief.pdf (application/pdf)\n" in exported
    share = http.post(f"/api/v1/conversations/{conv_id}/shares").json()["data"]
    shared = httpx.get(http.base_url.join(share["url"])).json()["data"]["messages"]
    assert shared[0]["attachments"][0]["name"] == "brief.pdf"


def test_a_large_document_goes_through_retrieval_with_a_citation(
    http, chat_agent, scripted_llm, settings
):
    settings.FILES_INLINE_MAX_CHARS = 500
    sections = [
        f"## Section {i}\n\nRoutine paragraph number {i} about logistics." for i in range(60)
    ]
    sections[37] = "## Wildlife\n\nThe zebra migration happens every July across the plains."
    text = "# Field guide\n\n" + "\n\n".join(sections)
    file_id = upload(http, "guide.md", text.encode(), "text/markdown").json()["data"]["id"]
    conv_id = _conversation(http, chat_agent)
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("attachment_search", {"query": "zebra migration"})]),
        "Zebras migrate in July.",
        "Zebras",
    )

    r = _send(http, conv_id, "When do zebras migrate?", file_id)

    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    first = scripted_llm.requests[0]
    assert "attachment_search" in [t["function"]["name"] for t in first["tools"]]
    note = _last_user(first)["content"][1]["text"]
    assert "too long to include" in note
    assert "zebra" not in note  # only the beginning is given inline
    tool_message = next(m for m in scripted_llm.requests[1]["messages"] if m["role"] == "tool")
    assert "The zebra migration happens every July across the plains." in tool_message["content"]
    answer = Message.objects.get(id=run.answer_message_id)
    assert answer.text == "Zebras migrate in July."
    cited = answer.citations[0]
    assert cited["document_id"] == file_id
    assert cited["document_name"] == "guide.md"
    assert "zebra migration" in cited["snippet"]


def test_agent_writes_a_file_and_the_user_downloads_it(
    http, workspace, user, scripted_llm, storage
):
    from tests.providers.factories import make_scripted_provider

    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(
        workspace=workspace,
        user=user,
        name="Writer",
        slug="writer",
        builtin_tools=["file_write", "file_list", "file_read", "file_delete"],
    )
    conv_id = _conversation(http, agent)
    report = "# Summary\n\nEverything is on track.\n"
    scripted_llm.push(
        Reply(
            tool_calls=[ToolCall("file_write", {"path": "reports/summary.md", "content": report})]
        ),
        Reply(tool_calls=[ToolCall("file_list", {})]),
        "I wrote reports/summary.md.",
        "Report",
    )

    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Write it"})

    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    listed = http.get(f"/api/v1/files?conversation_id={conv_id}&origin=agent").json()["data"]
    assert [(f["path"], f["size"], f["origin"]) for f in listed] == [
        ("reports/summary.md", len(report), "agent")
    ]
    download = http.get(listed[0]["content_url"])
    assert download.status_code == 200
    assert download.content == report.encode()
    events = read_sse(http.get(f"/api/v1/runs/{run.id}/stream"))
    results = [e["data"] for e in events if e["type"] == "tool.result"]
    assert results[0]["name"] == "file_write"
    assert results[0]["is_error"] is False
    assert f"/api/v1/files/{listed[0]['id']}/content" in results[0]["content"]
    assert results[1]["content"] == f"reports/summary.md ({len(report)} bytes)"
    assert len(storage.keys()) == 1

    assert http.delete(f"/api/v1/conversations/{conv_id}").status_code == 204

    assert File.objects.count() == 0
    wait_for(lambda: storage.keys() == [])


def test_traversal_and_oversized_writes_are_refused(
    http, workspace, user, scripted_llm, settings, storage
):
    settings.FILES_AGENT_MAX_FILE_BYTES = 1000
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    agent = make_agent(
        workspace=workspace, user=user, name="W", slug="w", builtin_tools=["file_write"]
    )
    conv_id = _conversation(http, agent)
    scripted_llm.push(
        Reply(
            tool_calls=[
                ToolCall("file_write", {"path": "../escape.txt", "content": "x"}),
                ToolCall("file_write", {"path": "/etc/passwd", "content": "x"}),
                ToolCall("file_write", {"path": "a/./b.txt", "content": "x"}),
                ToolCall("file_write", {"path": "big.txt", "content": "y" * 1001}),
            ]
        ),
        "Could not write.",
        "Nope",
    )

    r = http.post(f"/api/v1/conversations/{conv_id}/messages", json={"content": "Go"})

    run = _finished(r.json()["data"]["id"])
    assert run.status == "completed", run.error_message
    results = list(Message.objects.filter(conversation_id=conv_id, role="tool").order_by("seq"))
    assert [m.metadata["is_error"] for m in results] == [True, True, True, True]
    assert "'../escape.txt' is not allowed" in results[0].text
    assert "not a relative path" in results[1].text
    assert "'a/./b.txt' is not allowed" in results[2].text
    assert results[3].text == "The content is 1001 bytes; a workspace file holds at most 1000."
    assert File.objects.count() == 0
    assert storage.keys() == []


def test_openai_endpoint_passes_image_parts_and_refuses_them_without_vision(
    live, user, workspace, chat_agent, scripted_llm
):
    _, plaintext = make_api_key(user=user, workspace=workspace)
    image = "data:image/png;base64," + base64.b64encode(make_png()).decode()
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image_url", "image_url": {"url": image}},
            ],
        }
    ]
    scripted_llm.push("A red square.", "Red")
    with openai.OpenAI(base_url=f"{live.url}/api/v1", api_key=plaintext, max_retries=0) as sdk:
        completion = sdk.chat.completions.create(model="helper", messages=messages)
        assert completion.choices[0].message.content == "A red square."
        assert _last_user(scripted_llm.requests[0])["content"] == messages[0]["content"]

        _no_vision()
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.chat.completions.create(model="helper", messages=messages)
    assert caught.value.status_code == 400
    assert "does not accept images" in str(caught.value)


def test_an_attachment_never_read_fails_the_run_with_a_clear_error(
    http, chat_agent, scripted_llm, settings
):
    settings.FILES_PARSE_WAIT_SECONDS = 0.5
    file_id = upload(http, "notes.md", b"# Notes\n\nalpha", "text/markdown").json()["data"]["id"]
    File.objects.filter(id=file_id).update(status="pending")  # its worker was lost
    conv_id = _conversation(http, chat_agent)

    r = _send(http, conv_id, "Summarise", file_id)

    assert r.status_code == 202, r.text
    run = _finished(r.json()["data"]["id"])
    assert run.status == "failed"
    assert run.error_code == "attachment_unreadable"
    assert run.error_message == (
        "notes.md was still being read after 0.5 seconds; send the message again later."
    )
    assert scripted_llm.requests == []


def test_an_unreadable_document_is_refused_at_send_naming_it(http, chat_agent):
    broken = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ngarbage\n%%EOF"
    file_id = upload(http, "broken.pdf", broken, "application/pdf").json()["data"]["id"]
    conv_id = _conversation(http, chat_agent)

    r = _send(http, conv_id, "Read it", file_id)

    assert r.status_code == 400
    error = r.json()["error"]
    assert error["details"][0]["field"] == "attachments[0]"
    assert error["message"].startswith("broken.pdf could not be read: ")
    assert Run.objects.filter(conversation_id=conv_id).count() == 0
