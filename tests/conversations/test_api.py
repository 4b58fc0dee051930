"""The REST surface of conversations (no model calls): CRUD, search, pagination, export,
feedback, share links, stream tickets, and 404 for everybody else on every endpoint."""

import pytest

from apps.conversations.models import Conversation, MessageFeedback, Run, ShareLink, StreamTicket
from tests.agents.factories import make_agent
from tests.conversations.factories import make_conversation, make_exchange
from tests.helpers import assert_error, assert_outsiders_get_404


@pytest.fixture
def agent(workspace, user):
    return make_agent(workspace=workspace, user=user, name="Helper", slug="helper")


@pytest.fixture
def conv(agent, user):
    conv = make_conversation(agent=agent, user=user, title="Trip to Lisbon")
    make_exchange(conversation=conv, question="Where to eat?", answer="Try the pastéis.")
    return conv


def test_create_list_search_rename_delete(api, agent, conv, user):
    r = api.post("/api/v1/conversations", {"agent_id": "helper"}, format="json")
    assert r.status_code == 201
    created = r.json()["data"]
    assert created["agent_id"] == str(agent.id) and created["title"] == ""

    r = api.get("/api/v1/conversations")
    assert [c["id"] for c in r.json()["data"]] == [created["id"], str(conv.id)]
    r = api.get("/api/v1/conversations?search=pastéis")
    assert [c["id"] for c in r.json()["data"]] == [str(conv.id)]
    r = api.get("/api/v1/conversations?search=lisbon")
    assert [c["id"] for c in r.json()["data"]] == [str(conv.id)]
    r = api.get(f"/api/v1/conversations?agent_id={agent.id}&search=nothing-like-this")
    assert r.json()["data"] == []

    r = api.patch(f"/api/v1/conversations/{conv.id}", {"title": "Lisbon"}, format="json")
    assert r.json()["data"]["title"] == "Lisbon"
    assert api.delete(f"/api/v1/conversations/{conv.id}").status_code == 204
    assert not Conversation.objects.filter(id=conv.id).exists()
    assert not Run.objects.filter(conversation_id=conv.id).exists()


def test_create_with_unknown_agent_is_404(api):
    r = api.post("/api/v1/conversations", {"agent_id": "nope"}, format="json")
    assert_error(r, 404, "agent_not_found")
    assert Conversation.objects.count() == 0


def test_messages_keyset_pagination_both_ways(api, conv):
    for i in range(3):
        make_exchange(conversation=conv, question=f"q{i}", answer=f"a{i}")
    url = f"/api/v1/conversations/{conv.id}/messages"
    page = api.get(url + "?limit=3").json()
    assert [m["content"] for m in page["data"]] == ["a1", "q2", "a2"]
    assert page["meta"]["has_more"] is True
    older = api.get(url + f"?limit=3&before={page['meta']['next_before']}").json()
    assert [m["content"] for m in older["data"]] == ["q0", "a0", "q1"]
    newer = api.get(url + "?limit=2&after=2").json()
    assert [m["content"] for m in newer["data"]] == ["q0", "a0"]
    assert newer["meta"] == {**newer["meta"], "has_more": True, "next_after": 4}
    assert_error(api.get(url + "?before=x"), 400, "validation_error")


def test_export_json_and_markdown(api, conv):
    r = api.get(f"/api/v1/conversations/{conv.id}/export")
    body = r.json()["data"]
    assert body["conversation"]["title"] == "Trip to Lisbon"
    assert [m["content"] for m in body["messages"]] == ["Where to eat?", "Try the pastéis."]
    r = api.get(f"/api/v1/conversations/{conv.id}/export?as=markdown")
    assert r["Content-Type"].startswith("text/markdown")
    assert r.content.decode() == (
        "# Trip to Lisbon\n\n**You**\n\nWhere to eat?\n\n**Helper**\n\nTry the pastéis.\n"
    )


def test_feedback_on_answers_only(api, conv):
    answer = conv.messages.get(role="assistant")
    question = conv.messages.get(role="user")
    url = f"/api/v1/messages/{answer.id}/feedback"
    r = api.put(url, {"rating": "down", "comment": "too short"}, format="json")
    assert r.status_code == 200 and r.json()["data"]["rating"] == "down"
    r = api.put(url, {"rating": "up"}, format="json")
    assert MessageFeedback.objects.get().rating == "up"
    assert MessageFeedback.objects.get().comment == ""
    r = api.put(f"/api/v1/messages/{question.id}/feedback", {"rating": "up"}, format="json")
    assert_error(r, 400, "validation_error")
    assert MessageFeedback.objects.count() == 1


def test_share_link_public_then_revoked(api, anon, conv):
    r = api.post(f"/api/v1/conversations/{conv.id}/shares")
    assert r.status_code == 201
    share = r.json()["data"]
    public = anon.get(share["url"])
    assert public.status_code == 200
    assert public.json()["data"]["title"] == "Trip to Lisbon"
    assert [m["content"] for m in public.json()["data"]["messages"]] == [
        "Where to eat?",
        "Try the pastéis.",
    ]
    assert api.delete(f"/api/v1/conversations/{conv.id}/shares/{share['id']}").status_code == 204
    assert_error(anon.get(share["url"]), 404, "share_not_found")
    assert ShareLink.objects.get().revoked_at is not None


def test_stream_ticket_is_single_use(api, anon, conv):
    r = api.post(f"/api/v1/conversations/{conv.id}/stream-tickets")
    assert r.status_code == 201
    ticket = r.json()["data"]["ticket"]
    assert StreamTicket.objects.get().token_hash != ticket  # stored hashed
    assert (
        r.json()["data"]["stream_url"] == f"/api/v1/conversations/{conv.id}/stream?ticket={ticket}"
    )
    # Another conversation of the same user is not opened by this ticket.
    other = make_conversation(agent=conv.agent, user=conv.user)
    r = anon.get(f"/api/v1/conversations/{other.id}/stream?ticket={ticket}")
    assert_error(r, 404, "conversation_not_found")
    r = anon.get(f"/api/v1/conversations/{conv.id}/stream?ticket={ticket}")
    assert_error(r, 401, "unauthorized")  # used above, even though refused


def test_run_detail_and_conversation_runs(api, conv):
    run = conv.runs.get()
    r = api.get(f"/api/v1/runs/{run.id}")
    data = r.json()["data"]
    assert data["status"] == "completed"
    assert data["usage"] == {"input_tokens": 0, "output_tokens": 0}
    assert data["error"] is None
    r = api.get(f"/api/v1/conversations/{conv.id}/runs")
    assert [x["id"] for x in r.json()["data"]] == [str(run.id)]


def test_another_members_conversation_is_404(client_for, conv, workspace):
    from apps.users.models import Membership
    from tests.users.factories import UserFactory

    bob = UserFactory(email="bob@example.com")
    Membership.objects.create(user=bob, workspace=workspace, role="admin")
    r = client_for(bob).get(
        f"/api/v1/conversations/{conv.id}", HTTP_X_WORKSPACE_ID=str(workspace.id)
    )
    assert_error(r, 404, "conversation_not_found")


def test_outsiders_get_404_on_every_endpoint(outsider, conv):
    run = conv.runs.get()
    answer = conv.messages.get(role="assistant")
    share = ShareLink.objects.create(conversation=conv, created_by=conv.user, token="t0k")
    c = f"/api/v1/conversations/{conv.id}"
    for method, url, data in [
        ("get", c, None),
        ("patch", c, {"title": "x"}),
        ("delete", c, None),
        ("get", c + "/export", None),
        ("get", c + "/messages", None),
        ("post", c + "/messages", {"content": "hi"}),
        ("get", c + "/queue", None),
        ("get", c + "/runs", None),
        ("post", c + "/edit-last-user-message", {"content": "x"}),
        ("post", c + "/regenerate", None),
        ("get", c + "/shares", None),
        ("post", c + "/shares", None),
        ("delete", c + f"/shares/{share.id}", None),
        ("post", c + "/stream-tickets", None),
        ("get", c + "/stream?cursor=-1", None),
        ("get", f"/api/v1/runs/{run.id}", None),
        ("delete", f"/api/v1/runs/{run.id}", None),
        ("post", f"/api/v1/runs/{run.id}/cancel", None),
        ("post", f"/api/v1/runs/{run.id}/promote", None),
        ("post", f"/api/v1/runs/{run.id}/approvals", {"decisions": []}),
        ("get", f"/api/v1/runs/{run.id}/stream", None),
        ("put", f"/api/v1/messages/{answer.id}/feedback", {"rating": "up"}),
    ]:
        snapshot = lambda: (  # noqa: E731
            list(Conversation.objects.values()),
            list(Run.objects.values()),
            conv.messages.count(),
            list(ShareLink.objects.values()),
            StreamTicket.objects.count(),
            MessageFeedback.objects.count(),
        )
        assert_outsiders_get_404(
            method=method, url=url, outsider=outsider, data=data, snapshot=snapshot
        )
