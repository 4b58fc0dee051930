"""The console's tools, skills and MCP servers pages (Django test client) against a real
test MCP server: the same services as the API, errors on the field they name, 404 for
another workspace's objects, bounded queries on list pages."""

import os
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.skills.models import McpServer, Skill, Tool
from apps.skills.services import mcp_server_create, skill_upload
from tests.agents.factories import actor_for
from tests.mcp_server.fixtures import run_mcp_server
from tests.skills.conftest import close_pool, mcp_http  # noqa: F401
from tests.skills.factories import make_zip, skill_zip

pytestmark = pytest.mark.django_db


def zip_upload(data: bytes, name: str = "skill.zip") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/zip")


@pytest.fixture
def server(user, workspace, mcp_http):  # noqa: F811
    return mcp_server_create(
        actor=actor_for(user=user, workspace=workspace),
        name="demo",
        transport="streamable_http",
        url=mcp_http.url,
    )


@pytest.fixture
def skill(user, workspace):
    return skill_upload(actor=actor_for(user=user, workspace=workspace), data=skill_zip()).skill


# --- Tools ----------------------------------------------------------------------------------


def test_tools_list_the_built_ins_and_says_what_to_do_next(owner_client):
    page = owner_client.get(reverse("console:tools")).content.decode()
    assert "http_request" in page and "web_fetch" in page
    assert "Only the built-in tools so far" in page and reverse("console:mcp") in page


def test_a_tool_shows_its_schema_and_runs_with_arguments(owner_client, server, close_pool):  # noqa: F811
    echo = Tool.objects.get(mcp_server=server, remote_name="echo")
    url = reverse("console:tool", args=[echo.id])
    page = owner_client.get(url).content.decode()
    assert "&quot;required&quot;: [" in page and "&quot;text&quot;" in page
    response = owner_client.post(url, {"arguments": '{"text": "hi"}'})
    assert response.status_code == 200
    assert response.context["result"].content == "echo: hi"
    assert "echo: hi" in response.content.decode() and "badge-ok" in response.content.decode()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "Not JSON"),
        ("[1, 2]", "must be a JSON object"),
        ("{}", "text"),  # the schema's required argument, named
        ('{"text": 5}', "text"),
    ],
)
def test_bad_arguments_are_shown_on_the_field(owner_client, server, raw, message):
    echo = Tool.objects.get(mcp_server=server, remote_name="echo")
    response = owner_client.post(reverse("console:tool", args=[echo.id]), {"arguments": raw})
    assert response.status_code == 400
    errors = response.context["form"].errors["arguments"]
    assert message in " ".join(errors)
    assert response.context["result"] is None


# --- Skills ---------------------------------------------------------------------------------


def test_upload_a_skill_and_view_its_files_and_front_matter(owner_client):
    response = owner_client.post(reverse("console:skills"), {"bundle": zip_upload(skill_zip())})
    skill = Skill.objects.get(name="pdf-tools")
    assert response["Location"] == reverse("console:skill", args=[skill.id])
    page = owner_client.get(response["Location"]).content.decode()
    assert "Extract text and tables from PDF files." in page
    assert "license" in page and "MIT" in page
    assert "scripts/extract.py" in page and "reference/tables.md" in page
    assert "Use `scripts/extract.py`" in page
    assert "pdf-tools" in owner_client.get(reverse("console:skills")).content.decode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (make_zip({"x/README.md": "no skill here"}), "SKILL.md"),
        (b"not a zip at all", ""),
        (make_zip({"x/SKILL.md": "---\nname: Bad Name!\n---\n"}), ""),
    ],
)
def test_a_bad_bundle_is_refused_on_the_field(owner_client, data, message):
    response = owner_client.post(reverse("console:skills"), {"bundle": zip_upload(data)})
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "bundle" in errors and message in " ".join(errors["bundle"])
    assert not Skill.objects.exists()


def test_a_missing_bundle_is_named(owner_client):
    response = owner_client.post(reverse("console:skills"), {})
    assert response.status_code == 400
    assert "bundle" in response.context["form"].errors


def test_delete_a_skill(owner_client, skill):
    response = owner_client.post(reverse("console:skill_delete", args=[skill.id]))
    assert response["Location"] == reverse("console:skills")
    assert not Skill.objects.exists()


# --- MCP servers ----------------------------------------------------------------------------


def test_add_an_mcp_server_see_its_tools_refresh_and_delete(owner_client, mcp_http):  # noqa: F811
    assert "No MCP server yet" in owner_client.get(reverse("console:mcp")).content.decode()
    response = owner_client.post(
        reverse("console:mcp"),
        {"name": "demo", "url": mcp_http.url, "transport": "streamable_http", "auth_type": "none"},
    )
    server = McpServer.objects.get()
    assert response["Location"] == reverse("console:mcp_server", args=[server.id])
    assert server.status == "connected"
    page = owner_client.get(response["Location"]).content.decode()
    assert "demo_echo" in page and "test-mcp" in page
    response = owner_client.post(
        reverse("console:mcp_server_refresh", args=[server.id]), follow=True
    )
    assert "Refreshed" in response.content.decode()
    owner_client.post(reverse("console:mcp_server_delete", args=[server.id]))
    assert not McpServer.objects.exists() and not Tool.objects.filter(source="mcp").exists()


def mcp_form(**overrides):
    data = {"name": "x", "url": "http://127.0.0.1:9/mcp", "transport": "sse", "auth_type": "none"}
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (mcp_form(url="http://169.254.169.254/mcp"), "url"),
        (mcp_form(transport="stdio"), "transport"),
        (mcp_form(auth_type="bearer"), "bearer_token"),
        (mcp_form(name=""), "name"),
    ],
)
def test_mcp_errors_are_shown_on_the_field(owner_client, allow_loopback, data, field):
    response = owner_client.post(reverse("console:mcp"), data)
    assert response.status_code == 400
    assert field in response.context["form"].errors, response.context["form"].errors
    assert not McpServer.objects.exists()


def test_an_unreachable_server_is_added_with_its_status(owner_client, allow_loopback):
    response = owner_client.post(
        reverse("console:mcp"),
        {"name": "down", "url": "http://127.0.0.1:9/mcp", "transport": "streamable_http",
         "auth_type": "none"},
    )  # fmt: skip
    server = McpServer.objects.get()
    assert server.status == "error"
    page = owner_client.get(response["Location"]).content.decode()
    assert 'id="status-reason"' in page and "No tools discovered" in page


@pytest.mark.slow
def test_oauth_connect_through_the_console(
    owner_client,
    user,
    workspace,
    allow_loopback,
    close_pool,  # noqa: F811
):
    os.environ["TEST_MCP_ACCESS_TTL"] = "60"
    try:
        with run_mcp_server("http", oauth=True) as oauth:
            server = mcp_server_create(
                actor=actor_for(user=user, workspace=workspace),
                name="secure",
                transport="streamable_http",
                url=oauth.url,
                auth_type="oauth",
            )
            assert server.status == "needs_authorization"
            page = owner_client.get(reverse("console:mcp_server", args=[server.id])).content
            assert b"Connect with OAuth" in page
            response = owner_client.post(reverse("console:mcp_connect", args=[server.id]))
            assert response.status_code == 302
            query = parse_qs(urlparse(response["Location"]).query)
            callback = "http://testserver" + reverse("console:mcp_oauth_callback")
            assert query["redirect_uri"] == [callback]
            # The authorization server approves at once and sends the browser back.
            answer = httpx.get(response["Location"], follow_redirects=False)
            back = urlparse(answer.headers["location"])
            assert back.path == reverse("console:mcp_oauth_callback")
            done = owner_client.get(back.path + "?" + back.query)
            assert done["Location"] == reverse("console:mcp_server", args=[server.id])
            server.refresh_from_db()
            assert server.status == "connected" and server.tools.count() == 9
            forged = owner_client.get(reverse("console:mcp_oauth_callback") + "?state=x&code=y")
            assert forged["Location"] == reverse("console:mcp")
    finally:
        os.environ.pop("TEST_MCP_ACCESS_TTL", None)


# --- Tenancy and queries --------------------------------------------------------------------


def test_other_workspace_gets_404_on_every_object_url(outsider_client, server, skill):
    echo = Tool.objects.get(mcp_server=server, remote_name="echo")
    urls = [
        ("get", reverse("console:tool", args=[echo.id])),
        ("post", reverse("console:tool", args=[echo.id])),
        ("get", reverse("console:skill", args=[skill.id])),
        ("post", reverse("console:skill_delete", args=[skill.id])),
        ("get", reverse("console:mcp_server", args=[server.id])),
        ("post", reverse("console:mcp_server_refresh", args=[server.id])),
        ("post", reverse("console:mcp_server_delete", args=[server.id])),
        ("post", reverse("console:mcp_connect", args=[server.id])),
    ]
    for method, url in urls:
        response = getattr(outsider_client, method)(url, {"arguments": '{"text": "x"}'})
        assert response.status_code == 404, (method, url, response.status_code)
    assert (
        McpServer.objects.filter(pk=server.pk).exists()
        and Skill.objects.filter(pk=skill.pk).exists()
    )


def test_list_pages_make_a_bounded_number_of_queries(
    owner_client, user, workspace, server, django_assert_max_num_queries
):
    actor = actor_for(user=user, workspace=workspace)
    for i in range(8):
        skill_upload(
            actor=actor,
            data=make_zip({f"s{i}/SKILL.md": f"---\nname: skill-{i}\ndescription: d\n---\n"}),
        )
    owner_client.get(reverse("console:tools"))  # the built-ins' rows exist from here on
    for name in ("console:tools", "console:skills", "console:mcp"):
        with django_assert_max_num_queries(10):
            assert owner_client.get(reverse(name)).status_code == 200
    with django_assert_max_num_queries(10):
        assert owner_client.get(reverse("console:mcp_server", args=[server.id])).status_code == 200


def test_a_viewer_reads_but_cannot_run_upload_or_add(client, workspace, server, skill):
    from apps.users.choices import Role
    from tests.users.factories import UserFactory, add_member

    viewer = UserFactory(email="vera@example.com")
    add_member(workspace=workspace, user=viewer, role=Role.VIEWER)
    client.force_login(viewer)
    client.post(reverse("console:workspace_switch"), {"workspace": workspace.id})
    echo = Tool.objects.get(mcp_server=server, remote_name="echo")
    for name, args in (("console:tools", []), ("console:skills", []), ("console:mcp", [])):
        assert client.get(reverse(name, args=args)).status_code == 200
    assert client.get(reverse("console:mcp_server", args=[server.id])).status_code == 200
    writes = [
        (reverse("console:tool", args=[echo.id]), {"arguments": '{"text": "x"}'}),
        (reverse("console:skills"), {"bundle": zip_upload(skill_zip())}),
        (reverse("console:skill_delete", args=[skill.id]), {}),
        (reverse("console:mcp"), {"name": "x", "url": "https://mcp.example.com/mcp"}),
        (reverse("console:mcp_server_delete", args=[server.id]), {}),
    ]
    for url, data in writes:
        response = client.post(url, data)
        assert response.status_code == 403, url
        assert b"Not allowed" in response.content
    assert McpServer.objects.count() == 1 and Skill.objects.count() == 1
