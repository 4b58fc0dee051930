"""The console's pages through Django's test client: who may see what (the API's rules:
sign-in required, another workspace's object is 404), query counts of list pages, the
shared page, and the server-side Markdown."""

import pytest
from django.urls import reverse

from apps.conversations.models import Conversation, MessageFeedback
from apps.users.models import ApiKey
from tests.agents.factories import make_agent
from tests.conversations.factories import make_conversation, make_exchange

pytestmark = pytest.mark.django_db

PAGES = [
    "console:home",
    "console:chat",
    "console:chat_new",
    "console:agents",
    "console:agent_new",
    "console:knowledge",
    "console:api_keys",
    "console:providers",
    "console:members",
    "console:usage",
]


def object_urls(o):
    """(method, url) of every console URL naming one of `o`'s objects."""
    c, a, kb = o.conversation.id, o.agent.id, o.kb.id
    return [
        ("get", reverse("console:conversation", args=[c])),
        ("post", reverse("console:conversation_send", args=[c])),
        ("post", reverse("console:conversation_ticket", args=[c])),
        ("post", reverse("console:conversation_regenerate", args=[c])),
        ("post", reverse("console:conversation_rename", args=[c])),
        ("post", reverse("console:conversation_delete", args=[c])),
        ("post", reverse("console:conversation_share", args=[c])),
        ("get", reverse("console:conversation_export", args=[c])),
        ("get", reverse("console:message", args=[o.message.id])),
        ("post", reverse("console:feedback", args=[o.message.id])),
        ("post", reverse("console:run_decision", args=[o.run.id])),
        ("post", reverse("console:run_stop", args=[o.run.id])),
        ("get", reverse("console:agent", args=[a])),
        ("post", reverse("console:agent", args=[a])),
        ("post", reverse("console:agent_restore", args=[a, 1])),
        ("get", reverse("console:knowledge_base", args=[kb])),
        ("get", reverse("console:knowledge_documents", args=[kb])),
        ("post", reverse("console:knowledge_upload", args=[kb])),
        ("get", reverse("console:knowledge_search", args=[kb]) + "?q=office"),
        ("post", reverse("console:api_key_revoke", args=[o.key.id])),
        ("post", reverse("console:provider_verify", args=[o.provider.id])),
    ]


@pytest.mark.parametrize("name", PAGES)
def test_signed_out_visitor_is_sent_to_sign_in(client, name):
    response = client.get(reverse(name))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("name", PAGES)
def test_owner_sees_every_page(owner_client, objects, name):
    response = owner_client.get(reverse(name))
    assert response.status_code == 200
    assert b"Agent Platform" in response.content


def test_owner_sees_every_object_page(owner_client, objects):
    for method, url in object_urls(objects):
        if method == "get":
            response = owner_client.get(url)
            assert response.status_code == 200, url


def test_other_workspace_member_gets_404_on_every_object_url(outsider_client, objects):
    for method, url in object_urls(objects):
        response = getattr(outsider_client, method)(url, {"content": "hi", "title": "x"})
        assert response.status_code == 404, (method, url, response.status_code)
    # Nothing changed.
    conv = Conversation.objects.get(pk=objects.conversation.pk)
    assert conv.title == "Opening hours"
    assert ApiKey.objects.get(pk=objects.key.pk).revoked_at is None
    assert not MessageFeedback.objects.exists()
    assert conv.runs.count() == 1


def test_switching_to_a_workspace_one_does_not_belong_to_is_404(outsider_client, workspace):
    response = outsider_client.post(
        reverse("console:workspace_switch"), {"workspace": workspace.id}
    )
    assert response.status_code == 404


def test_workspace_switcher_changes_the_workspace_pages_act_in(owner_client, user, objects):
    from tests.users.factories import make_workspace

    team = make_workspace(owner=user, name="Team")
    response = owner_client.post(reverse("console:workspace_switch"), {"workspace": team.id})
    assert response.status_code == 302
    page = owner_client.get(reverse("console:chat"))
    assert b"Opening hours" not in page.content
    assert b"No chats yet" in page.content
    # The personal workspace's conversation is now another workspace's: 404.
    assert (
        owner_client.get(
            reverse("console:conversation", args=[objects.conversation.id])
        ).status_code
        == 404
    )


def test_conversation_page_renders_sanitized_markdown(owner_client, user, objects):
    conv = make_conversation(agent=objects.agent, user=user)
    make_exchange(
        conversation=conv,
        question="<b>hi</b>",
        answer="**bold** <script>alert(1)</script> [x](javascript:alert(1)) `code`",
    )
    html = owner_client.get(reverse("console:conversation", args=[conv.id])).content.decode()
    assert "<strong>bold</strong>" in html
    assert "<code>code</code>" in html
    assert "<script>alert(1)</script>" not in html
    assert (
        "javascript:alert" not in html.split('id="messages"')[1].split('<div class="composer">')[0]
        or 'href="javascript' not in html
    )
    assert 'href="javascript' not in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html  # the user's text is escaped, not rendered


def test_conversation_list_query_count_does_not_grow_with_rows(
    owner_client, user, objects, django_assert_max_num_queries
):
    for i in range(15):
        make_conversation(agent=objects.agent, user=user, title=f"Chat {i}")
    with django_assert_max_num_queries(12):
        response = owner_client.get(reverse("console:chat"))
    assert response.content.count(b'class="conv-item"') == 16


@pytest.mark.parametrize(
    "name",
    [
        "console:agents",
        "console:knowledge",
        "console:api_keys",
        "console:providers",
        "console:members",
        "console:usage",
        "console:home",
    ],
)
def test_list_pages_make_a_bounded_number_of_queries(
    owner_client, user, workspace, objects, name, django_assert_max_num_queries
):
    from tests.agents.factories import make_chat_model
    from tests.knowledge.factories import make_kb
    from tests.users.factories import make_api_key

    for i in range(10):
        make_agent(workspace=workspace, user=user, name=f"Agent {i}")
        make_kb(user=user, workspace=workspace, name=f"KB {i}")
        make_api_key(user=user, workspace=workspace, name=f"key {i}")
        make_chat_model(workspace=workspace, name=f"m{i}")
    with django_assert_max_num_queries(14):
        response = owner_client.get(reverse(name))
    assert response.status_code == 200


def test_knowledge_documents_query_count_is_bounded(
    owner_client, user, objects, django_assert_max_num_queries
):
    from tests.knowledge.factories import add_texts

    add_texts(user=user, kb=objects.kb, texts={f"doc{i}.txt": f"Text {i}" for i in range(12)})
    with django_assert_max_num_queries(10):
        response = owner_client.get(reverse("console:knowledge_documents", args=[objects.kb.id]))
    assert response.content.count(b"data-document=") == 13


def test_api_key_is_shown_once(owner_client, workspace):
    created = owner_client.post(reverse("console:api_keys"), {"name": "ci"})
    assert created.status_code == 302  # post/redirect/get: a reload cannot make a second key
    response = owner_client.get(created["Location"])
    key = ApiKey.objects.get(name="ci", workspace=workspace)
    html = response.content.decode()
    secret = html.split('id="secret">')[1].split("<")[0]
    assert secret.startswith(key.prefix)
    assert response["Cache-Control"] == "no-store"
    again = owner_client.get(reverse("console:api_keys")).content.decode()
    assert secret not in again and key.prefix in again


def test_shared_link_is_a_page_for_browsers_and_json_for_api_clients(client, objects):
    token = objects.share.token
    page = client.get(reverse("console:shared", args=[token]))
    assert page.status_code == 200
    assert b"Opening hours" in page.content and b"<strong>9</strong>" in page.content
    assert b"composer" not in page.content  # read-only
    api = client.get(f"/api/v1/shared/{token}", HTTP_ACCEPT="application/json")
    assert api.status_code == 200 and api.json()["data"]["title"] == "Opening hours"
    browser = client.get(
        f"/api/v1/shared/{token}", HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8"
    )
    assert browser.status_code == 302 and browser["Location"] == f"/shared/{token}"
    assert client.get(reverse("console:shared", args=["nope"])).status_code == 404


def test_feedback_and_rename(owner_client, objects):
    response = owner_client.post(
        reverse("console:feedback", args=[objects.message.id]), {"rating": "up"}
    )
    assert response.status_code == 200
    assert MessageFeedback.objects.get().rating == "up"
    bad = owner_client.post(
        reverse("console:feedback", args=[objects.message.id]), {"rating": "meh"}
    )
    assert bad.status_code == 400
    owner_client.post(
        reverse("console:conversation_rename", args=[objects.conversation.id]), {"title": "Hours"}
    )
    assert Conversation.objects.get(pk=objects.conversation.pk).title == "Hours"


def test_send_refuses_an_empty_message_with_a_reason(owner_client, objects):
    response = owner_client.post(
        reverse("console:conversation_send", args=[objects.conversation.id]), {"content": "  "}
    )
    assert response.status_code == 400
    assert "Write a message" in response.json()["error"]
    assert objects.conversation.runs.count() == 1


def test_viewer_cannot_add_a_provider(client, user, workspace):
    from apps.users.choices import Role
    from tests.users.factories import UserFactory, add_member

    viewer = UserFactory(email="viewer@example.com")
    add_member(workspace=workspace, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    response = client.post(
        reverse("console:providers"),
        {"name": "x", "kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"},
    )
    assert response.status_code == 403
    from apps.providers.models import Provider

    assert not Provider.objects.filter(name="x").exists()
