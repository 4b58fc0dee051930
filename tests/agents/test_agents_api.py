import re
import uuid

import pytest

from apps.agents.models import Agent, AgentGrant, AgentVersion
from apps.users.choices import Role
from apps.users.models import AuditEvent
from tests.agents.factories import (
    make_agent,
    make_chat_model,
    make_knowledge_base,
    make_skill_version,
    make_tool,
)
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.users.factories import UserFactory, add_member, make_workspace

pytestmark = pytest.mark.django_db


def _fields(response):
    # DRF reports a ListField item as `field.0` (core's flattening), ours as `field[0]`:
    # compare them in the documented `field[0]` form.
    return sorted(
        re.sub(r"\.(\d+)", r"[\1]", d["field"]) for d in response.json()["error"]["details"]
    )


def _full_payload(workspace, other_agent):
    model = make_chat_model(workspace=workspace)
    tool = make_tool(workspace=workspace, name="lookup")
    kb = make_knowledge_base(workspace=workspace, name="Handbook")
    skill = make_skill_version(workspace=workspace, name="writing")
    payload = {
        "name": "Research Bot",
        "description": "Finds things out.",
        "avatar": "🔎",
        "system_prompt": "You are careful.\n",
        "model_id": str(model.id),
        "temperature": 0.3,
        "max_tokens": 800,
        "reasoning": True,
        "builtin_tools": ["current_time", "calculator"],
        "tool_ids": [str(tool.id)],
        "skill_version_ids": [str(skill.id)],
        "knowledge_base_ids": [str(kb.id)],
        "subagent_ids": [str(other_agent.id)],
        "memory_mode": "none",
        "max_loops": 7,
        "wall_clock_seconds": 120,
        "suggestions_enabled": True,
        "opening_message": "Hi! What should I look up?",
        "starter_questions": ["What is new?", "Summarize the handbook"],
        "tools_requiring_approval": ["lookup"],
    }
    return payload


def test_create_with_every_field_then_get(api, user, workspace):
    helper = make_agent(workspace=workspace, name="Helper")
    payload = _full_payload(workspace, helper)
    response = api.post("/api/v1/agents", payload, format="json")
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    for key, value in payload.items():
        assert data[key] == value, key
    assert data["slug"] == "research-bot"
    assert data["visibility"] == "private"
    assert data["version"] == 1
    assert data["workspace_id"] == str(workspace.id)
    assert data["created_by_id"] == str(user.id)
    assert data["archived_at"] is None
    assert data["permissions"] == {"edit": True, "manage": True}
    assert api.get(f"/api/v1/agents/{data['id']}").json()["data"] == data
    version = AgentVersion.objects.get(agent_id=data["id"])
    assert (version.number, version.note) == (1, "Created")
    assert version.config["system_prompt"] == "You are careful.\n"
    assert version.config["tool_ids"] == payload["tool_ids"]


def test_defaults_when_only_a_name_is_given(api):
    response = api.post("/api/v1/agents", {"name": "Plain"}, format="json")
    data = response.json()["data"]
    assert response.status_code == 201
    assert {k: data[k] for k in ("model_id", "temperature", "max_tokens", "reasoning")} == {
        "model_id": None,
        "temperature": None,
        "max_tokens": None,
        "reasoning": False,
    }
    assert (data["max_loops"], data["wall_clock_seconds"], data["memory_mode"]) == (
        10,
        300,
        "conversation",
    )
    assert data["tool_ids"] == data["builtin_tools"] == data["starter_questions"] == []


def test_slugs_are_derived_and_unique_per_workspace(api, workspace):
    first = api.post("/api/v1/agents", {"name": "Research Bot"}, format="json").json()["data"]
    second = api.post("/api/v1/agents", {"name": "Research Bot"}, format="json").json()["data"]
    assert (first["slug"], second["slug"]) == ("research-bot", "research-bot-2")
    other = make_workspace(owner=UserFactory())
    assert make_agent(workspace=other, name="Research Bot").slug == "research-bot"


def test_an_explicit_slug_in_use_is_409_naming_the_field(api, workspace):
    make_agent(workspace=workspace, slug="bot")
    response = api.post("/api/v1/agents", {"name": "Other", "slug": "bot"}, format="json")
    body = assert_error(response, 409, "agent_slug_taken")
    assert body["error"]["details"][0]["field"] == "slug"
    assert Agent.objects.count() == 1


def test_bad_input_is_400_naming_each_field(api):
    response = api.post(
        "/api/v1/agents",
        {
            "name": "",
            "slug": "Bad Slug",
            "temperature": 3,
            "max_loops": 0,
            "wall_clock_seconds": 5,
            "builtin_tools": ["rm_rf"],
            "tools_requiring_approval": ["no spaces"],
            "avatar": "javascript://alert(1)",
            "memory_mode": "forever",
            "tool_ids": ["not-a-uuid"],
        },
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == [
        "avatar",
        "builtin_tools[0]",
        "max_loops",
        "memory_mode",
        "name",
        "slug",
        "temperature",
        "tool_ids[0]",
        "tools_requiring_approval[0]",
        "wall_clock_seconds",
    ]
    assert Agent.objects.count() == 0


def test_a_slug_that_looks_like_an_id_is_refused(api):
    response = api.post("/api/v1/agents", {"name": "X", "slug": str(uuid.uuid4())}, format="json")
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["slug"]


def test_references_outside_the_workspace_are_refused(api, workspace):
    other = make_workspace(owner=UserFactory())
    foreign_tool = make_tool(workspace=other)
    foreign_model = make_chat_model(workspace=other)
    foreign_kb = make_knowledge_base(workspace=other)
    foreign_agent = make_agent(workspace=other)
    mine = make_tool(workspace=workspace, name="mine")
    response = api.post(
        "/api/v1/agents",
        {
            "name": "X",
            "model_id": str(foreign_model.id),
            "tool_ids": [str(mine.id), str(foreign_tool.id)],
            "knowledge_base_ids": [str(foreign_kb.id)],
            "subagent_ids": [str(foreign_agent.id)],
        },
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == [
        "knowledge_base_ids[0]",
        "model_id",
        "subagent_ids[0]",
        "tool_ids[1]",
    ]
    assert Agent.objects.filter(workspace=workspace).count() == 0


def test_two_versions_of_one_skill_cannot_be_pinned(api, workspace):
    v1 = make_skill_version(workspace=workspace, name="writing", number=1)
    v2 = make_skill_version(workspace=workspace, name="writing", number=2)
    response = api.post(
        "/api/v1/agents",
        {"name": "X", "skill_version_ids": [str(v1.id), str(v2.id)]},
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["skill_version_ids[1]"]


def test_an_agent_cannot_be_its_own_subagent(api, workspace):
    agent = make_agent(workspace=workspace)
    response = api.patch(
        f"/api/v1/agents/{agent.id}", {"subagent_ids": [str(agent.id)]}, format="json"
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["subagent_ids[0]"]
    assert agent.subagents.count() == 0


def test_every_update_keeps_the_previous_version(api, workspace):
    agent = make_agent(workspace=workspace, name="Bot", system_prompt="v1 prompt")
    tool = make_tool(workspace=workspace)
    url = f"/api/v1/agents/{agent.id}"
    response = api.patch(
        url, {"system_prompt": "v2 prompt", "tool_ids": [str(tool.id)]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["data"]["version"] == 2
    # The same values again (and a slug change) make no new version.
    response = api.patch(url, {"system_prompt": "v2 prompt", "slug": "renamed"}, format="json")
    assert (response.json()["data"]["version"], response.json()["data"]["slug"]) == (2, "renamed")
    listed = api.get(f"{url}/versions").json()["data"]
    assert [(v["number"], v["note"]) for v in listed] == [(2, "Updated"), (1, "Created")]
    assert listed[1]["config"]["system_prompt"] == "v1 prompt"
    assert listed[1]["config"]["tool_ids"] == []
    assert listed[0]["config"]["tool_ids"] == [str(tool.id)]
    one = api.get(f"{url}/versions/1").json()["data"]
    assert one == listed[1]


def test_restoring_a_version_makes_a_new_version_with_its_configuration(api, workspace):
    tool = make_tool(workspace=workspace)
    agent = make_agent(workspace=workspace, system_prompt="first", tool_ids=[tool.id])
    url = f"/api/v1/agents/{agent.id}"
    api.patch(url, {"system_prompt": "second", "tool_ids": [], "max_loops": 3}, format="json")
    response = api.post(f"{url}/versions/1/restore")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert (data["version"], data["system_prompt"], data["max_loops"]) == (3, "first", 10)
    assert data["tool_ids"] == [str(tool.id)]
    assert AgentVersion.objects.get(agent=agent, number=3).note == "Restored version 1"
    # Restoring what is already current changes nothing.
    assert api.post(f"{url}/versions/3/restore").json()["data"]["version"] == 3
    assert AgentVersion.objects.filter(agent=agent).count() == 3


def test_restoring_drops_references_deleted_since(api, workspace):
    tool = make_tool(workspace=workspace)
    agent = make_agent(workspace=workspace, tool_ids=[tool.id])
    api.patch(f"/api/v1/agents/{agent.id}", {"tool_ids": []}, format="json")
    tool.delete()
    data = api.post(f"/api/v1/agents/{agent.id}/versions/1/restore").json()["data"]
    assert data["tool_ids"] == []


def test_unknown_version_is_404(api, workspace):
    agent = make_agent(workspace=workspace)
    assert_error(api.get(f"/api/v1/agents/{agent.id}/versions/9"), 404, "agent_version_not_found")
    assert_error(
        api.post(f"/api/v1/agents/{agent.id}/versions/9/restore"), 404, "agent_version_not_found"
    )


def test_delete_archives_until_purged(api, workspace):
    agent = make_agent(workspace=workspace, name="Old")
    url = f"/api/v1/agents/{agent.id}"
    assert api.delete(url).status_code == 204
    assert api.delete(url).status_code == 204  # idempotent
    assert api.get("/api/v1/agents").json()["data"] == []
    archived = api.get("/api/v1/agents?archived=true").json()["data"]
    assert [a["id"] for a in archived] == [str(agent.id)]
    assert api.get(url).json()["data"]["archived_at"] is not None
    assert api.get(url).json()["data"]["permissions"]["edit"] is False
    assert_error(api.patch(url, {"name": "New"}, format="json"), 409, "agent_archived")
    agent.refresh_from_db()
    assert agent.name == "Old"
    response = api.post(f"{url}/unarchive")
    assert response.json()["data"]["archived_at"] is None
    assert [a["id"] for a in api.get("/api/v1/agents").json()["data"]] == [str(agent.id)]


def test_purge_needs_an_archived_agent_and_removes_it(api, workspace):
    agent = make_agent(workspace=workspace)
    url = f"/api/v1/agents/{agent.id}"
    assert_error(api.post(f"{url}/purge"), 409, "agent_not_archived")
    assert Agent.objects.filter(pk=agent.pk).exists()
    api.delete(url)
    assert api.post(f"{url}/purge").status_code == 204
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentVersion.objects.filter(agent_id=agent.pk).exists()
    assert_error(api.get(url), 404, "agent_not_found")
    actions = AuditEvent.objects.filter(target_type="agent", target_id=str(agent.pk))
    assert sorted(actions.values_list("action", flat=True)) == ["agent.archive", "agent.purge"]


def test_duplicate_makes_a_private_copy_owned_by_the_caller(api, user, workspace):
    bob = UserFactory()
    add_member(workspace=workspace, user=bob, role=Role.MEMBER)
    tool = make_tool(workspace=workspace)
    source = make_agent(
        workspace=workspace,
        user=bob,
        name="Shared",
        visibility="workspace",
        system_prompt="Be brief.",
        tool_ids=[tool.id],
        starter_questions=["Hi?"],
    )
    response = api.post(f"/api/v1/agents/{source.id}/duplicate", {}, format="json")
    assert response.status_code == 201, response.content
    copy = response.json()["data"]
    assert (copy["name"], copy["slug"], copy["visibility"], copy["version"]) == (
        "Shared (copy)",
        "shared-copy",
        "private",
        1,
    )
    assert copy["created_by_id"] == str(user.id)
    assert (copy["system_prompt"], copy["tool_ids"], copy["starter_questions"]) == (
        "Be brief.",
        [str(tool.id)],
        ["Hi?"],
    )
    assert AgentVersion.objects.get(agent_id=copy["id"]).note == (
        f"Duplicated from {source.slug} version 1"
    )
    named = api.post(f"/api/v1/agents/{source.id}/duplicate", {"name": "Mine"}, format="json")
    assert named.json()["data"]["name"] == "Mine"


def test_export_then_import_into_another_workspace_resolves_by_name(api, user, workspace):
    model = make_chat_model(workspace=workspace, name="gpt-x")
    tool = make_tool(workspace=workspace, name="lookup")
    kb = make_knowledge_base(workspace=workspace, name="Handbook")
    agent = make_agent(
        workspace=workspace,
        name="Exported",
        slug="exported",
        model_id=model.id,
        tool_ids=[tool.id],
        knowledge_base_ids=[kb.id],
        builtin_tools=["calculator"],
        tools_requiring_approval=["lookup"],
    )
    document = api.get(f"/api/v1/agents/{agent.id}/export").json()["data"]
    assert document["format"] == "agent-platform.agent"
    assert document["format_version"] == 1
    assert document["agent"]["tools"] == [{"id": str(tool.id), "name": "lookup"}]
    assert document["agent"]["model"] == {"id": str(model.id), "name": "gpt-x"}
    assert "id" not in document["agent"] and "visibility" not in document["agent"]

    team = make_workspace(owner=user, name="Team")
    team_model = make_chat_model(workspace=team, name="gpt-x")
    team_tool = make_tool(workspace=team, name="lookup")
    team_kb = make_knowledge_base(workspace=team, name="Handbook")
    headers = {"HTTP_X_WORKSPACE_ID": str(team.id)}
    response = api.post("/api/v1/agents/import", document, format="json", **headers)
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["workspace_id"] == str(team.id)
    assert (data["name"], data["slug"], data["model_id"]) == (
        "Exported",
        "exported",
        str(team_model.id),
    )
    assert data["tool_ids"] == [str(team_tool.id)]
    assert data["knowledge_base_ids"] == [str(team_kb.id)]
    assert (data["builtin_tools"], data["tools_requiring_approval"]) == (["calculator"], ["lookup"])
    # Importing again in the same workspace keeps both, with a free slug.
    again = api.post("/api/v1/agents/import", document, format="json", **headers)
    assert again.json()["data"]["slug"] == "exported-2"
    assert AgentVersion.objects.get(agent_id=data["id"]).note == "Imported"


def test_import_names_what_does_not_resolve_and_creates_nothing(api, user, workspace):
    tool = make_tool(workspace=workspace, name="lookup")
    kb = make_knowledge_base(workspace=workspace, name="Handbook")
    agent = make_agent(workspace=workspace, tool_ids=[tool.id], knowledge_base_ids=[kb.id])
    document = api.get(f"/api/v1/agents/{agent.id}/export").json()["data"]
    team = make_workspace(owner=user, name="Team")
    make_tool(workspace=team, name="lookup")
    before = Agent.objects.count()
    response = api.post(
        "/api/v1/agents/import", document, format="json", HTTP_X_WORKSPACE_ID=str(team.id)
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["agent.knowledge_bases[0]"]
    assert Agent.objects.count() == before


def test_import_validates_the_document_shape(api):
    response = api.post(
        "/api/v1/agents/import",
        {"format": "something-else", "format_version": 7, "agent": {"max_loops": 0}},
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["agent.max_loops", "agent.name", "format", "format_version"]
    response = api.post("/api/v1/agents/import", {"agent": "nope"}, format="json")
    assert_error(response, 400, "validation_error")
    assert Agent.objects.count() == 0


def test_list_searches_and_costs_a_fixed_number_of_queries(
    api, workspace, django_assert_num_queries
):
    tool = make_tool(workspace=workspace)
    for i in range(5):
        make_agent(workspace=workspace, name=f"Agent {i}", tool_ids=[tool.id])
    make_agent(workspace=workspace, name="Translator", description="French to English")
    # session, user, actor, page, then the references (one query for the four kinds)
    with django_assert_num_queries(5):
        response = api.get("/api/v1/agents?limit=4")
    body = response.json()
    assert len(body["data"]) == 4 and body["meta"]["has_more"] is True
    assert body["data"][0]["name"] == "Translator"
    found = api.get("/api/v1/agents?search=french").json()["data"]
    assert [a["name"] for a in found] == ["Translator"]


# --- sharing and roles --------------------------------------------------------------


@pytest.fixture
def team(user, workspace):
    """Bob (member), Carol (member), Victor (viewer), Ada (admin) in Alice's workspace."""
    people = {}
    for name, role in (
        ("bob", Role.MEMBER),
        ("carol", Role.MEMBER),
        ("victor", Role.VIEWER),
        ("ada", Role.ADMIN),
    ):
        people[name] = UserFactory(email=f"{name}@example.com")
        add_member(workspace=workspace, user=people[name], role=role)
    return people


def _headers(workspace):
    return {"HTTP_X_WORKSPACE_ID": str(workspace.id)}


def test_a_private_agent_is_seen_only_by_its_creator_and_admins(api, workspace, team, client_for):
    agent = make_agent(workspace=workspace, name="Secret")
    url = f"/api/v1/agents/{agent.id}"
    for name in ("bob", "victor"):
        client = client_for(team[name])
        assert_error(client.get(url, **_headers(workspace)), 404, "agent_not_found")
        listed = client.get("/api/v1/agents", **_headers(workspace)).json()["data"]
        assert listed == []
    ada = client_for(team["ada"])
    data = ada.get(url, **_headers(workspace)).json()["data"]
    assert data["permissions"] == {"edit": True, "manage": True}


def test_workspace_visibility_lets_everyone_use_but_not_edit(api, workspace, team, client_for):
    agent = make_agent(workspace=workspace, name="Shared", visibility="workspace")
    url = f"/api/v1/agents/{agent.id}"
    bob = client_for(team["bob"])
    data = bob.get(url, **_headers(workspace)).json()["data"]
    assert data["permissions"] == {"edit": False, "manage": False}
    assert_error(
        bob.patch(url, {"name": "Mine"}, format="json", **_headers(workspace)), 403, "forbidden"
    )
    assert_error(bob.delete(url, **_headers(workspace)), 403, "forbidden")
    victor = client_for(team["victor"])
    assert victor.get(url, **_headers(workspace)).status_code == 200
    agent.refresh_from_db()
    assert (agent.name, agent.archived_at, agent.version) == ("Shared", None, 1)


def test_named_grants_give_use_or_edit(api, workspace, team, client_for):
    agent = make_agent(workspace=workspace, name="Team bot")
    url = f"/api/v1/agents/{agent.id}"
    response = api.put(
        f"{url}/sharing",
        {
            "visibility": "members",
            "grants": [
                {"user_id": str(team["bob"].id), "permission": "edit"},
                {"user_id": str(team["victor"].id)},
            ],
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["visibility"] == "members"
    assert [(g["email"], g["permission"]) for g in data["grants"]] == [
        ("bob@example.com", "edit"),
        ("victor@example.com", "use"),
    ]
    assert api.get(f"{url}/sharing").json()["data"] == data
    event = AuditEvent.objects.get(action="agent.sharing", target_id=str(agent.pk))
    assert event.metadata["visibility"] == "members"
    assert event.metadata["grants"] == {
        str(team["bob"].id): "edit",
        str(team["victor"].id): "use",
    }

    bob = client_for(team["bob"])
    response = bob.patch(
        url, {"system_prompt": "Bob was here"}, format="json", **_headers(workspace)
    )
    assert response.status_code == 200
    assert response.json()["data"]["version"] == 2
    # An editor may not reshare, archive or purge.
    assert_error(
        bob.put(
            f"{url}/sharing", {"visibility": "workspace"}, format="json", **_headers(workspace)
        ),
        403,
        "forbidden",
    )
    assert_error(
        bob.patch(url, {"visibility": "workspace"}, format="json", **_headers(workspace)),
        403,
        "forbidden",
    )
    assert_error(bob.delete(url, **_headers(workspace)), 403, "forbidden")
    # A viewer with a grant sees it but never writes.
    victor = client_for(team["victor"])
    assert victor.get(url, **_headers(workspace)).status_code == 200
    assert_error(
        victor.patch(url, {"name": "V"}, format="json", **_headers(workspace)), 403, "forbidden"
    )
    # Not granted: not there.
    carol = client_for(team["carol"])
    assert_error(carol.get(url, **_headers(workspace)), 404, "agent_not_found")
    agent.refresh_from_db()
    assert (agent.visibility, agent.system_prompt, agent.archived_at) == (
        "members",
        "Bob was here",
        None,
    )

    # Replacing the grants removes Bob's.
    api.put(f"{url}/sharing", {"visibility": "members", "grants": []}, format="json")
    assert_error(bob.get(url, **_headers(workspace)), 404, "agent_not_found")
    assert AgentGrant.objects.filter(agent=agent).count() == 0


def test_grants_have_no_effect_while_private(api, workspace, team, client_for):
    agent = make_agent(workspace=workspace)
    api.put(
        f"/api/v1/agents/{agent.id}/sharing",
        {
            "visibility": "private",
            "grants": [{"user_id": str(team["bob"].id), "permission": "edit"}],
        },
        format="json",
    )
    bob = client_for(team["bob"])
    assert_error(
        bob.get(f"/api/v1/agents/{agent.id}", **_headers(workspace)), 404, "agent_not_found"
    )


def test_sharing_with_a_non_member_names_the_field(api, workspace):
    agent = make_agent(workspace=workspace)
    stranger = UserFactory()
    response = api.put(
        f"/api/v1/agents/{agent.id}/sharing",
        {"visibility": "members", "grants": [{"user_id": str(stranger.id)}]},
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["grants[0].user_id"]
    agent.refresh_from_db()
    assert agent.visibility == "private"
    assert AgentGrant.objects.count() == 0


def test_a_viewer_cannot_create_duplicate_import_or_submit_jobs(workspace, team, client_for):
    victor = client_for(team["victor"])
    h = _headers(workspace)
    shared = make_agent(workspace=workspace, visibility="workspace")
    assert_error(victor.post("/api/v1/agents", {"name": "V"}, format="json", **h), 403, "forbidden")
    assert_error(
        victor.post(f"/api/v1/agents/{shared.id}/duplicate", {}, format="json", **h),
        403,
        "forbidden",
    )
    document = {"format": "agent-platform.agent", "format_version": 1, "agent": {"name": "I"}}
    assert_error(
        victor.post("/api/v1/agents/import", document, format="json", **h), 403, "forbidden"
    )
    assert_error(
        victor.post(
            "/api/v1/agent-jobs/optimize-prompt", {"system_prompt": "x"}, format="json", **h
        ),
        403,
        "forbidden",
    )
    assert Agent.objects.count() == 1


def test_a_read_only_api_key_reads_but_cannot_write(user, workspace):
    from tests.users.factories import api_key_client, make_api_key

    agent = make_agent(workspace=workspace, name="Keyed")
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=("agents:read",))
    client = api_key_client(plaintext)
    assert client.get(f"/api/v1/agents/{agent.id}").json()["data"]["name"] == "Keyed"
    assert_error(client.post("/api/v1/agents", {"name": "New"}, format="json"), 403, "forbidden")
    assert_error(
        client.patch(f"/api/v1/agents/{agent.id}", {"name": "X"}, format="json"), 403, "forbidden"
    )
    assert_error(client.delete(f"/api/v1/agents/{agent.id}"), 403, "forbidden")
    agent.refresh_from_db()
    assert (agent.name, agent.archived_at, Agent.objects.count()) == ("Keyed", None, 1)
    _, writer = make_api_key(user=user, workspace=workspace, scopes=("agents:write",))
    response = api_key_client(writer).post("/api/v1/agents", {"name": "New"}, format="json")
    assert response.status_code == 201


def test_outsiders_get_404_on_every_agent_endpoint(api, workspace, outsider):
    agent = make_agent(workspace=workspace, name="Mine", visibility="workspace")
    base = f"/api/v1/agents/{agent.id}"
    cases = [
        ("get", base, None),
        ("patch", base, {"name": "Stolen"}),
        ("delete", base, None),
        ("post", f"{base}/unarchive", None),
        ("post", f"{base}/purge", None),
        ("post", f"{base}/duplicate", {}),
        ("get", f"{base}/export", None),
        ("get", f"{base}/sharing", None),
        ("put", f"{base}/sharing", {"visibility": "private"}),
        ("get", f"{base}/versions", None),
        ("get", f"{base}/versions/1", None),
        ("post", f"{base}/versions/1/restore", None),
    ]
    counts = lambda: (  # noqa: E731
        Agent.objects.count(),
        AgentVersion.objects.count(),
        AgentGrant.objects.count(),
        list(Agent.objects.values_list("name", "visibility", "archived_at", "version")),
    )
    for method, url, data in cases:
        assert_outsiders_get_404(
            method=method, url=url, outsider=outsider, data=data, snapshot=counts
        )


def test_the_creator_can_change_visibility_in_a_patch(api, workspace, team, client_for):
    agent = make_agent(workspace=workspace, name="Later shared")
    response = api.patch(f"/api/v1/agents/{agent.id}", {"visibility": "workspace"}, format="json")
    assert (response.json()["data"]["visibility"], response.json()["data"]["version"]) == (
        "workspace",
        1,  # sharing is not configuration: no new version
    )
    bob = client_for(team["bob"])
    assert bob.get(f"/api/v1/agents/{agent.id}", **_headers(workspace)).status_code == 200
    event = AuditEvent.objects.get(action="agent.sharing", target_id=str(agent.pk))
    assert event.metadata["visibility"] == "workspace"


def test_an_idempotency_key_creates_the_agent_once(api):
    headers = {"HTTP_IDEMPOTENCY_KEY": "create-research-bot"}
    first = api.post("/api/v1/agents", {"name": "Once"}, format="json", **headers)
    again = api.post("/api/v1/agents", {"name": "Once"}, format="json", **headers)
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["data"]["id"] == first.json()["data"]["id"]
    assert Agent.objects.count() == 1


def test_a_patch_with_bad_values_names_them_and_changes_nothing(api, workspace):
    agent = make_agent(workspace=workspace, name="Stable", max_loops=5)
    response = api.patch(
        f"/api/v1/agents/{agent.id}",
        {"name": "", "max_loops": 500, "starter_questions": "not a list", "model_id": "x"},
        format="json",
    )
    assert_error(response, 400, "validation_error")
    assert _fields(response) == ["max_loops", "model_id", "name", "starter_questions"]
    agent.refresh_from_db()
    assert (agent.name, agent.max_loops, agent.version) == ("Stable", 5, 1)
    assert AgentVersion.objects.filter(agent=agent).count() == 1


def test_the_list_rows_say_what_the_detail_says_for_each_member(api, workspace, team, client_for):
    """The list reads `.values()` rows, the detail model instances: the same output,
    permissions (from the role, the creator and the member's grant) included."""
    agent = make_agent(workspace=workspace, name="Team bot")
    shared = api.put(
        f"/api/v1/agents/{agent.id}/sharing",
        {
            "visibility": "members",
            "grants": [{"user_id": str(team["bob"].id), "permission": "edit"}],
        },
        format="json",
    )
    assert shared.status_code == 200, shared.content
    expected_permissions = {
        "bob": {"edit": True, "manage": False},
        "ada": {"edit": True, "manage": True},
    }
    for name in ("bob", "ada"):
        client = client_for(team[name])
        listed = client.get("/api/v1/agents", **_headers(workspace)).json()["data"]
        detail = client.get(f"/api/v1/agents/{agent.id}", **_headers(workspace)).json()["data"]
        assert [row for row in listed if row["id"] == str(agent.id)] == [detail]
        assert detail["permissions"] == expected_permissions[name]
