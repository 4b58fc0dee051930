import pytest

from tests.agents.factories import make_agent
from tests.conversations.conftest import http, live  # noqa: F401 (fixtures)
from tests.knowledge.factories import add_texts, make_kb
from tests.providers.factories import make_scripted_provider
from tests.tasks.conftest import clock, tick  # noqa: F401 (fixtures)

WORKFLOWS = "/api/v1/workflows"


@pytest.fixture
def agent(workspace, user, scripted_llm):
    """An agent of the user's workspace answering through the scripted model server."""
    make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return make_agent(workspace=workspace, user=user, name="Support", slug="support")


@pytest.fixture
def kb(agent, user, workspace):
    """A knowledge base with two indexed documents (embedded by the scripted server)."""
    kb = make_kb(user=user, workspace=workspace, name="Policies")
    add_texts(
        user=user,
        kb=kb,
        texts={
            "refunds.txt": "Refunds are paid back within five business days.",
            "shipping.txt": "Parcels ship from Lyon every morning.",
        },
    )
    return kb


def create_workflow(api, definition, *, name="Flow", publish=True):
    response = api.post(WORKFLOWS, {"name": name, "definition": definition}, format="json")
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    if publish:
        published = api.post(f"{WORKFLOWS}/{data['id']}/publish", {}, format="json")
        assert published.status_code == 200, published.content
        data = published.json()["data"]
    return data


def start_run(api, workflow_id, inputs=None):
    response = api.post(f"{WORKFLOWS}/{workflow_id}/runs", {"inputs": inputs or {}}, format="json")
    assert response.status_code == 202, response.content
    return response.json()["data"]


def run_detail(api, run_id):
    response = api.get(f"{WORKFLOWS}/runs/{run_id}")
    assert response.status_code == 200, response.content
    return response.json()["data"]


def steps_by_id(run):
    return {s["step_id"]: s for s in run["steps"]}


@pytest.fixture
def receiver(allow_loopback, settings):
    """A real webhook receiver over HTTP (loopback allowed for the outbound guard)."""
    from tests.tasks.receiver import Receiver

    settings.WEBHOOK_TIMEOUT_SECONDS = 2
    server = Receiver().start()
    yield server
    server.stop()


def simple_flow(*steps, inputs=None):
    """start -> steps (chained in order) -> end (outputs: the last step's output)."""
    chain = [{"id": "start", "type": "start", "inputs": inputs or {}}]
    previous = "start"
    for step in steps:
        chain.append({"after": [previous], **step})
        previous = step["id"]
    chain.append(
        {
            "id": "end",
            "type": "end",
            "after": [previous],
            "outputs": {"result": f"{{{{ steps.{previous}.output }}}}"},
        }
    )
    return {"steps": chain}
