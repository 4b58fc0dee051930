"""Agent pages beyond create/edit: a draft generated from a description and a prompt
optimized (the model on the scripted server over real HTTP, the job run by the worker's
code), a diff between versions, export and import, sharing; another workspace's objects
are 404."""

import json
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from apps.agents.models import Agent, AgentGrant, AgentJob
from apps.agents.services import agent_update
from apps.conversations.models import Conversation
from apps.providers.scripted import Reply
from apps.users.choices import Role
from tests.agents.factories import actor_for, make_agent, make_knowledge_base
from tests.providers.factories import make_scripted_provider
from tests.users.factories import UserFactory, add_member

pytestmark = pytest.mark.django_db

DRAFT = {
    "name": "Travel planner",
    "description": "Plans trips.",
    "system_prompt": "You plan trips.\nAsk for dates first.",
    "opening_message": "Where to?",
    "starter_questions": ["A weekend in Rome?"],
    "tool_ids": [],
    "builtin_tools": ["calculator"],
}


@pytest.fixture
def model(workspace, scripted_llm):
    _, chat, _ = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return chat


@pytest.fixture
def agent(user, workspace, model):
    return make_agent(
        workspace=workspace, user=user, name="Helper", system_prompt="Be brief.", model_id=model.id
    )


def test_a_draft_from_a_description_fills_the_new_agent_form(
    owner_client, model, scripted_llm, django_capture_on_commit_callbacks
):
    scripted_llm.push(Reply(text=json.dumps(DRAFT)))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("console:agent_generate"), {"description": "Someone who plans trips"}
        )
    job = AgentJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('console:agent_new')}?draft={job.id}"
    assert job.status == "succeeded"
    page = owner_client.get(response["Location"]).content.decode()
    assert 'id="draft-ready"' in page
    assert 'value="Travel planner"' in page
    assert "You plan trips.\nAsk for dates first.</textarea>" in page
    assert "A weekend in Rome?</textarea>" in page
    assert re.search(
        r'<input type="checkbox" name="builtin_tools" value="calculator"[^>]* checked', page
    )
    assert "Someone who plans trips" in scripted_llm.requests[-1]["messages"][-1]["content"]
    assert not Agent.objects.exists()  # nothing is created before the person submits


def test_a_failed_draft_says_why(
    owner_client, model, scripted_llm, django_capture_on_commit_callbacks
):
    scripted_llm.push(Reply(text="Sure! Here is an agent."))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("console:agent_generate"), {"description": "A planner"}
        )
    page = owner_client.get(response["Location"]).content.decode()
    assert "The draft failed: The model did not reply with a JSON object." in page


def test_a_draft_needs_a_description(owner_client, model):
    response = owner_client.post(reverse("console:agent_generate"), {"description": ""})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not AgentJob.objects.exists()


def test_a_pending_draft_polls_and_reloads_when_done(owner_client, user, workspace, model):
    job = AgentJob.objects.create(
        workspace=workspace, created_by=user, kind="generate_agent", input={"description": "x"}
    )
    page = owner_client.get(f"{reverse('console:agent_new')}?draft={job.id}").content.decode()
    assert 'data-job-status="queued"' in page
    status = owner_client.get(reverse("console:agent_job", args=[job.id]))
    assert "HX-Refresh" not in status
    AgentJob.objects.filter(pk=job.pk).update(status="failed", error_message="No model.")
    assert owner_client.get(reverse("console:agent_job", args=[job.id]))["HX-Refresh"] == "true"


def test_someone_elses_draft_is_404(user, workspace, model):
    job = AgentJob.objects.create(
        workspace=workspace, created_by=user, kind="generate_agent", input={"description": "x"}
    )
    bob = UserFactory(email="bob@example.com")
    add_member(workspace=workspace, user=bob, role=Role.ADMIN)
    client = Client()
    client.force_login(bob)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    assert client.get(f"{reverse('console:agent_new')}?draft={job.id}").status_code == 404
    assert client.get(f"{reverse('console:agent_new')}?draft=not-an-id").status_code == 404
    assert client.get(reverse("console:agent_job", args=[job.id])).status_code == 404


def test_optimize_shows_the_proposal_beside_the_prompt_and_accept_saves_it(
    owner_client, agent, scripted_llm, django_capture_on_commit_callbacks
):
    better = "You are a concise assistant.\nAnswer in two sentences at most."
    scripted_llm.push(Reply(text=json.dumps({"system_prompt": better, "changes": ["Clearer"]})))
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client.post(
            reverse("console:agent_optimize", args=[agent.id]), {"system_prompt": "Be brief."}
        )
    job = AgentJob.objects.get()
    assert response["Location"] == f"{reverse('console:agent', args=[agent.id])}?proposal={job.id}"
    page = owner_client.get(response["Location"]).content.decode()
    assert '<pre class="prompt-box" id="proposal-current">Be brief.</pre>' in page
    assert f'<pre class="prompt-box" id="proposal-new">{better}</pre>' in page
    assert "Clearer" in page
    agent.refresh_from_db()
    assert (agent.system_prompt, agent.version) == ("Be brief.", 1)  # not before accepting
    owner_client.post(reverse("console:agent_proposal_accept", args=[agent.id, job.id]))
    agent.refresh_from_db()
    assert (agent.system_prompt, agent.version) == (better, 2)


def test_optimize_refuses_an_empty_prompt(owner_client, agent):
    response = owner_client.post(
        reverse("console:agent_optimize", args=[agent.id]), {"system_prompt": "  "}, follow=True
    )
    assert "system_prompt: write instructions first" in response.content.decode()
    assert not AgentJob.objects.exists()


def test_version_diff_shows_changed_fields_and_an_escaped_line_diff(
    owner_client, user, workspace, agent
):
    kb = make_knowledge_base(workspace=workspace, name="Manuals")
    agent_update(
        actor=actor_for(user=user, workspace=workspace),
        agent=agent,
        values={
            "system_prompt": "Be brief.\n<script>alert(1)</script>",
            "knowledge_base_ids": [str(kb.id)],
            "suggestions_enabled": True,
        },
    )
    url = reverse("console:agent_diff", args=[agent.id])
    page = owner_client.get(url, {"before": 1, "after": 2}).content.decode()
    assert '<div class="diff-line diff-equal">' in page
    assert "Be brief." in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert 'data-field="knowledge_base_ids"' in page
    assert '<div class="diff-line diff-insert" data-after>Manuals</div>' in page
    assert '<div class="diff-line diff-delete" data-before>no</div>' in page
    assert 'data-field="name"' not in page  # unchanged fields are not listed
    same = owner_client.get(url, {"before": 2, "after": 2}).content.decode()
    assert "No differences" in same
    missing = owner_client.get(url, {"before": 1, "after": 9})
    assert missing.status_code == 400
    assert "version" in missing.content.decode().lower()
    bad = owner_client.get(url, {"before": "x", "after": 2})
    assert bad.status_code == 400
    assert "Enter a whole number." in bad.content.decode()


def test_export_downloads_the_document_and_import_creates_a_private_copy(
    owner_client, user, workspace, agent
):
    response = owner_client.get(reverse("console:agent_export", args=[agent.id]))
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="{agent.slug}.agent.json"'
    document = json.loads(response.content)
    assert (document["format"], document["agent"]["name"]) == ("agent-platform.agent", "Helper")
    upload = SimpleUploadedFile("helper.json", response.content, "application/json")
    imported = owner_client.post(reverse("console:agent_import"), {"file": upload})
    copy = Agent.objects.exclude(pk=agent.pk).get()
    assert imported["Location"] == reverse("console:agent", args=[copy.id])
    assert (copy.name, copy.system_prompt, copy.visibility) == ("Helper", "Be brief.", "private")
    assert copy.slug != agent.slug


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "Not a JSON file"),
        (b"[1, 2]", "The file is not a JSON object."),
        (
            json.dumps({"format": "other", "format_version": 1, "agent": {"name": "A"}}).encode(),
            "format: &quot;other&quot; is not a valid choice.",
        ),
        (
            json.dumps(
                {
                    "format": "agent-platform.agent",
                    "format_version": 1,
                    "agent": {"name": "A", "temperature": 7, "tools": [{"id": "nope"}]},
                }
            ).encode(),
            "agent.temperature: Ensure this value is less than or equal to 2.0.",
        ),
        (
            json.dumps(
                {
                    "format": "agent-platform.agent",
                    "format_version": 1,
                    "agent": {"name": "A", "tools": [{"name": "t"}, {"id": "nope"}]},
                }
            ).encode(),
            "agent.tools[1].id: Must be a valid UUID.",
        ),
        (
            json.dumps(
                {
                    "format": "agent-platform.agent",
                    "format_version": 1,
                    "agent": {"name": "A", "knowledge_bases": [{"name": "Nowhere"}]},
                }
            ).encode(),
            "agent.knowledge_bases[0]",
        ),
    ],
)
def test_import_errors_are_shown_and_nothing_is_created(owner_client, model, body, message):
    upload = SimpleUploadedFile("agent.json", body, "application/json")
    response = owner_client.post(reverse("console:agent_import"), {"file": upload})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Agent.objects.exists()


def test_sharing_sets_visibility_and_grants(owner_client, user, workspace, agent):
    bob = UserFactory(email="bob@example.com")
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    page = owner_client.get(reverse("console:agent", args=[agent.id])).content.decode()
    assert f'name="grant_{bob.id}"' in page
    response = owner_client.post(
        reverse("console:agent_sharing", args=[agent.id]),
        {"visibility": "members", f"grant_{bob.id}": "edit"},
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.visibility == "members"
    assert list(AgentGrant.objects.values_list("user_id", "permission")) == [(bob.id, "edit")]
    # Bob can now edit it, but not share it (not its creator, not an admin).
    client = Client()
    client.force_login(bob)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    assert (
        'id="sharing"' not in client.get(reverse("console:agent", args=[agent.id])).content.decode()
    )
    refused = client.post(
        reverse("console:agent_sharing", args=[agent.id]), {"visibility": "workspace"}
    )
    assert refused.status_code == 403
    agent.refresh_from_db()
    assert agent.visibility == "members"


def test_sharing_with_a_bad_visibility_says_so(owner_client, agent):
    response = owner_client.post(
        reverse("console:agent_sharing", args=[agent.id]), {"visibility": "everyone"}, follow=True
    )
    assert "Select a valid choice." in response.content.decode()
    agent.refresh_from_db()
    assert agent.visibility == "private"


def test_other_workspace_gets_404_on_the_new_agent_urls(outsider_client, user, workspace, agent):
    job = AgentJob.objects.create(
        workspace=workspace, created_by=user, kind="optimize_prompt", input={"system_prompt": "x"}
    )
    a = agent.id
    for method, url in [
        ("post", reverse("console:agent_optimize", args=[a])),
        ("post", reverse("console:agent_proposal_accept", args=[a, job.id])),
        ("get", reverse("console:agent_diff", args=[a]) + "?before=1&after=1"),
        ("get", reverse("console:agent_export", args=[a])),
        ("post", reverse("console:agent_sharing", args=[a])),
        ("get", reverse("console:agent_job", args=[job.id])),
    ]:
        response = getattr(outsider_client, method)(
            url, {"system_prompt": "hacked", "visibility": "workspace"}
        )
        assert response.status_code == 404, (method, url)
    agent.refresh_from_db()
    assert (agent.system_prompt, agent.visibility, agent.version) == ("Be brief.", "private", 1)
    assert AgentJob.objects.count() == 1


def test_test_chat_beside_the_form_is_a_framed_conversation(owner_client, user, workspace, agent):
    response = owner_client.post(reverse("console:agent_test_chat", args=[agent.id]))
    conversation = Conversation.objects.get()
    assert (conversation.agent_id, conversation.title) == (agent.id, "Test of Helper")
    assert (
        response["Location"]
        == f"{reverse('console:agent', args=[agent.id])}?test={conversation.id}"
    )
    page = owner_client.get(response["Location"]).content.decode()
    frame = f'src="{reverse("console:conversation", args=[conversation.id])}?embed=1"'
    assert frame in page
    framed = owner_client.get(
        reverse("console:conversation", args=[conversation.id]), {"embed": "1"}
    )
    assert framed["X-Frame-Options"] == "SAMEORIGIN"
    assert 'id="sidebar"' not in framed.content.decode()
    assert 'id="composer"' in framed.content.decode()
    normal = owner_client.get(reverse("console:conversation", args=[conversation.id]))
    assert normal["X-Frame-Options"] == "DENY"
    assert 'id="sidebar"' in normal.content.decode()
    # A conversation with another agent is not this agent's test chat.
    other = make_agent(workspace=workspace, user=user, name="Other")
    url = reverse("console:agent", args=[other.id])
    assert owner_client.get(f"{url}?test={conversation.id}").status_code == 404
    assert owner_client.get(f"{url}?test=nope").status_code == 404


def test_other_workspace_cannot_start_a_test_chat(outsider_client, agent):
    response = outsider_client.post(reverse("console:agent_test_chat", args=[agent.id]))
    assert response.status_code == 404
    assert not Conversation.objects.exists()
