import pytest
from django.test import Client

from apps.agents.models import AgentJob, AgentVersion
from tests.agents.factories import make_agent, make_tool
from tests.users.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_operators_browse_agents_versions_and_jobs_in_the_admin(user, workspace):
    admin = UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    tool = make_tool(workspace=workspace)
    agent = make_agent(workspace=workspace, name="Admin visible", tool_ids=[tool.id])
    version = AgentVersion.objects.get(agent=agent)
    job = AgentJob.objects.create(workspace=workspace, created_by=user, kind="optimize_prompt")
    pages = [
        "/admin/agents/agent/",
        "/admin/agents/agent/?archived_at__isempty=1",
        f"/admin/agents/agent/{agent.id}/change/",
        "/admin/agents/agentversion/",
        f"/admin/agents/agentversion/{version.id}/change/",
        "/admin/agents/agentjob/",
        f"/admin/agents/agentjob/{job.id}/change/",
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
    assert b"Admin visible" in client.get("/admin/agents/agent/?q=admin").content
    # Versions are history: nobody adds or edits them, even in the admin.
    assert client.get("/admin/agents/agentversion/add/").status_code == 403
