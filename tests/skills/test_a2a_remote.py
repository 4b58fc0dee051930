"""Remote A2A agents: registered through the REST API (card fetched through the outbound
guard, credential encrypted and never returned), attached to an agent as a tool, and
delegated to by a run (the engine, the scripted model server) against a remote agent
served by the official a2a-sdk server."""

import pytest

from apps.providers.scripted import Reply, ToolCall
from apps.skills.models import RemoteAgent, Tool
from tests.agents.test_engine import make_agent
from tests.providers.factories import make_scripted_provider
from tests.skills.a2a_server import run_remote_a2a
from tests.skills.test_agent_runs import run, tool_messages

pytestmark = pytest.mark.slow


@pytest.fixture
def remote_a2a(allow_loopback):
    with run_remote_a2a() as server:
        yield server


def _register(api, url, **extra):
    return api.post(
        "/api/v1/remote-agents", {"name": "researcher", "url": url, **extra}, format="json"
    )


def test_register_fetches_the_card_and_never_returns_the_credential(api, remote_a2a):
    r = _register(api, remote_a2a.url, auth_type="bearer", credential="s3cret-token-value")
    assert r.status_code == 201, r.json()
    body = r.json()["data"]
    assert body["status"] == "connected", body
    assert body["card"]["name"] == "Remote researcher"
    assert body["tool"]["name"] == "ask_researcher"
    assert "s3cret-token-value" not in r.text
    assert body["credential"] != ""
    remote = RemoteAgent.objects.get(id=body["id"])
    assert remote.credential == "s3cret-token-value"  # decrypted by the field
    assert remote_a2a.app.authorizations[-1] == "Bearer s3cret-token-value"
    tool = Tool.objects.get(remote_agent=remote)
    assert tool.source == "a2a"
    assert "Remote researcher" in tool.description and "Lookup" in tool.description
    listed = api.get("/api/v1/remote-agents").json()["data"]
    assert [x["id"] for x in listed] == [body["id"]]
    assert "s3cret-token-value" not in api.get(f"/api/v1/remote-agents/{body['id']}").text


def test_bad_input_and_blocked_urls_and_other_workspaces(api, outsider, settings, remote_a2a):
    r = api.post("/api/v1/remote-agents", {"name": "x y", "url": "nope"}, format="json")
    assert r.status_code == 400
    fields = {d["field"] for d in r.json()["error"]["details"]}
    assert fields == {"name", "url"}
    r = _register(api, remote_a2a.url, auth_type="header", credential="k")
    assert r.status_code == 400
    assert r.json()["error"]["details"][0]["field"] == "auth_header"
    settings.OUTBOUND_ALLOWED_HOSTS = []
    r = _register(api, "http://127.0.0.1:9/agent")
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "url_not_allowed"
    assert RemoteAgent.objects.count() == 0 and Tool.objects.filter(source="a2a").count() == 0
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    remote_id = _register(api, remote_a2a.url).json()["data"]["id"]
    assert outsider.get(f"/api/v1/remote-agents/{remote_id}").status_code == 404
    assert outsider.delete(f"/api/v1/remote-agents/{remote_id}").status_code == 404
    assert outsider.get("/api/v1/remote-agents").json()["data"] == []
    assert _register(api, remote_a2a.url).status_code == 409  # name taken
    assert api.delete(f"/api/v1/remote-agents/{remote_id}").status_code == 204
    assert Tool.objects.filter(source="a2a").count() == 0


def test_an_unreachable_card_is_a_status_not_an_error(api, remote_a2a):
    r = _register(api, remote_a2a.url + "/nothing-here")
    assert r.status_code == 201
    body = r.json()["data"]
    assert body["status"] == "error"
    assert body["status_reason"] == "The agent card could not be fetched (HTTP 404)."


def test_a_run_delegates_to_the_remote_agent_and_cites_it(api, workspace, scripted_llm, remote_a2a):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    remote_id = _register(api, remote_a2a.url).json()["data"]["id"]
    tool = Tool.objects.get(remote_agent_id=remote_id)
    agent = make_agent(workspace, builtin_tools=(), tool_ids=(tool.id,))
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("ask_researcher", {"task": "capital of Peru"})]),
        "Lima, says the researcher.",
    )
    outcome, hooks = run(agent, "Ask the researcher about Peru")

    assert outcome.status == "completed", outcome
    assert remote_a2a.executor.tasks == ["capital of Peru"]
    requests = [r for r in scripted_llm.requests if "messages" in r]
    assert [m["content"] for m in tool_messages(requests[1])] == ["Remote says: capital of Peru"]
    updates = hooks.of("remote_agent.update")
    call_id = hooks.of("tool.call")[0]["tool_call_id"]
    assert {u["tool_call_id"] for u in updates} == {call_id}
    assert {u["remote_agent_id"] for u in updates} == {remote_id}
    assert [u["state"] for u in updates][-1] == "completed"
    assert "working" in [u["state"] for u in updates]
    assert "Looking it up remotely." in [u["text"] for u in updates]
    assert len({u["task_id"] for u in updates}) == 1
    # The answer cites the delegation.
    citations = hooks.of("answer.done")[-1]["citations"]
    assert [c["document_id"] for c in citations] == [f"a2a:{remote_id}"]
    assert citations[0]["chunk_id"] == updates[-1]["task_id"]


def test_a_dead_remote_agent_is_an_error_result(api, workspace, scripted_llm, remote_a2a):
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    remote_id = _register(api, remote_a2a.url).json()["data"]["id"]
    tool = Tool.objects.get(remote_agent_id=remote_id)
    remote_a2a.stop()
    agent = make_agent(workspace, builtin_tools=(), tool_ids=(tool.id,))
    scripted_llm.push(
        Reply(tool_calls=[ToolCall("ask_researcher", {"task": "anything"})]), "It is down."
    )
    outcome, hooks = run(agent, "Ask")
    assert outcome.status == "completed"
    result = hooks.of("tool.result")[0]
    assert result["is_error"] is True
    assert result["content"].startswith("The remote agent researcher failed:")
