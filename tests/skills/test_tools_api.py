import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from apps.skills.models import OpenApiSource, Tool
from apps.users.models import AuditEvent
from tests.helpers import assert_error, assert_outsiders_get_404

TOOLS = "/api/v1/tools"
SOURCES = "/api/v1/tools/openapi-sources"

OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Pets", "version": "1"},
    "paths": {
        "/pets/{pet_id}": {
            "get": {
                "operationId": "getPet",
                "summary": "Get one pet.",
                "parameters": [
                    {
                        "name": "pet_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "integer"},
                    },
                    {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                ],
            }
        },
        "/pets": {
            "post": {
                "operationId": "createPet",
                "summary": "Create a pet.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Pet"}}
                    },
                },
            }
        },
    },
    "components": {
        "schemas": {
            "Pet": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
                "required": ["name"],
            }
        }
    },
}

PAGE = (
    "<!doctype html><html><head><title>Docs page</title><style>p{}</style>"
    "<script>alert('x')</script></head><body><nav>menu</nav><h1>Hello</h1>"
    "<p>First   paragraph.</p></body></html>"
)


class Handler(BaseHTTPRequestHandler):
    seen: list[dict] = []

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body, ctype="application/json", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        Handler.seen.append(
            {
                "path": url.path,
                "query": parse_qs(url.query),
                "auth": self.headers.get("X-Api-Key", ""),
            }
        )
        if url.path == "/openapi.json":
            self._send(200, json.dumps(OPENAPI))
        elif url.path.startswith("/pets/"):
            if self.headers.get("X-Api-Key") != "k-123456789012":
                self._send(401, '{"error": "no key"}')
                return
            self._send(200, json.dumps({"id": int(url.path.split("/")[-1]), "name": "Rex"}))
        elif url.path == "/page.html":
            self._send(200, PAGE, "text/html; charset=utf-8")
        elif url.path == "/skill.zip":
            from tests.skills.factories import skill_zip

            self._send(200, skill_zip(), "application/zip")
        elif url.path == "/SKILL.md":
            from tests.skills.factories import skill_md

            self._send(200, skill_md("from-url", "Imported."), "text/markdown")
        elif url.path == "/to-private":
            self._send(302, "", headers={"Location": "http://10.1.2.3/secret"})
        else:
            self._send(404, "{}")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        self._send(201, json.dumps({"created": json.loads(body)}))


@pytest.fixture
def web(allow_loopback):
    Handler.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def import_pets(api, web, **extra):
    return api.post(
        SOURCES,
        {
            "name": "pets",
            "url": f"{web}/openapi.json",
            "base_url": web,
            "auth_type": "header",
            "auth_name": "X-Api-Key",
            "credential": "k-123456789012",
            **extra,
        },
        format="json",
    )


def test_tools_list_has_builtins_and_filters(api, workspace, django_assert_max_num_queries):
    response = api.get(TOOLS)
    assert response.status_code == 200
    assert sorted(t["name"] for t in response.json()["data"]) == ["http_request", "web_fetch"]
    assert {t["source"] for t in response.json()["data"]} == {"builtin"}
    assert api.get(f"{TOOLS}?source=mcp").json()["data"] == []
    with django_assert_max_num_queries(8):
        api.get(TOOLS)


def test_openapi_import_from_url_makes_one_tool_per_operation(api, workspace, web):
    response = import_pets(api, web)
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["tool_count"] == 2
    assert data["credential"] == "…9012"
    assert "k-123456789012" not in response.content.decode()
    tools = {t.name: t for t in Tool.objects.filter(openapi_source_id=data["id"])}
    assert sorted(tools) == ["pets_createPet", "pets_getPet"]
    assert tools["pets_getPet"].parameters == {
        "type": "object",
        "properties": {"pet_id": {"type": "integer"}, "verbose": {"type": "boolean"}},
        "required": ["pet_id"],
    }
    assert tools["pets_createPet"].parameters["properties"]["body"]["required"] == ["name"]
    assert tools["pets_createPet"].requires_approval is True
    assert tools["pets_getPet"].requires_approval is False


def test_exec_runs_an_openapi_tool_with_its_credential_and_audits(api, workspace, web):
    import_pets(api, web)
    tool = Tool.objects.get(name="pets_getPet")
    response = api.post(
        f"{TOOLS}/{tool.id}/exec", {"arguments": {"pet_id": 7, "verbose": True}}, format="json"
    )
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["is_error"] is False
    assert data["content"] == 'HTTP 200\n{"id": 7, "name": "Rex"}'
    assert Handler.seen[-1] == {
        "path": "/pets/7",
        "query": {"verbose": ["true"]},
        "auth": "k-123456789012",
    }
    event = AuditEvent.objects.get(action="tool.exec")
    assert event.target_id == str(tool.id)
    assert event.metadata == {"tool": "pets_getPet", "source": "openapi", "is_error": False}
    create = Tool.objects.get(name="pets_createPet")
    response = api.post(
        f"{TOOLS}/{create.id}/exec", {"arguments": {"body": {"name": "Tom"}}}, format="json"
    )
    assert response.json()["data"]["content"] == 'HTTP 201\n{"created": {"name": "Tom"}}'


def test_exec_validates_arguments_against_the_schema(api, workspace, web):
    import_pets(api, web)
    tool = Tool.objects.get(name="pets_getPet")
    response = api.post(f"{TOOLS}/{tool.id}/exec", {"arguments": {"pet_id": "x"}}, format="json")
    body = assert_error(response, 400, "invalid_tool_arguments")
    assert body["error"]["details"] == [
        {"field": "arguments.pet_id", "message": "'x' is not of type 'integer'"}
    ]
    assert not AuditEvent.objects.filter(action="tool.exec").exists()


def test_web_fetch_extracts_text_and_http_request(api, workspace, web):
    api.get(TOOLS)
    fetch = Tool.objects.get(workspace=workspace, builtin="web_fetch")
    response = api.post(
        f"{TOOLS}/{fetch.id}/exec", {"arguments": {"url": f"{web}/page.html"}}, format="json"
    )
    data = response.json()["data"]
    assert data["is_error"] is False
    assert data["content"] == "# Docs page\n\nDocs page\nHello\nFirst paragraph."
    http = Tool.objects.get(workspace=workspace, builtin="http_request")
    response = api.post(
        f"{TOOLS}/{http.id}/exec",
        {"arguments": {"url": f"{web}/pets", "method": "POST", "body": '{"name": "Ann"}'}},
        format="json",
    )
    assert response.json()["data"]["content"] == 'HTTP 201\n{"created": {"name": "Ann"}}'


def test_builtin_http_tools_refuse_private_addresses(api, workspace, web, settings):
    api.get(TOOLS)
    http = Tool.objects.get(workspace=workspace, builtin="http_request")
    response = api.post(
        f"{TOOLS}/{http.id}/exec", {"arguments": {"url": f"{web}/to-private"}}, format="json"
    )
    data = response.json()["data"]
    assert data["is_error"] is True
    assert "10.1.2.3" in data["content"]
    settings.OUTBOUND_ALLOWED_HOSTS = []
    response = api.post(
        f"{TOOLS}/{http.id}/exec", {"arguments": {"url": f"{web}/pets"}}, format="json"
    )
    data = response.json()["data"]
    assert data["is_error"] is True
    assert "127.0.0.1" in data["content"]


def test_openapi_import_refuses_private_base_url(api, workspace):
    response = api.post(
        SOURCES,
        {"name": "x", "document": OPENAPI, "base_url": "http://192.168.1.10/api"},
        format="json",
    )
    assert_error(response, 400, "url_not_allowed")
    assert OpenApiSource.objects.count() == 0
    assert Tool.objects.filter(source="openapi").count() == 0


def test_openapi_import_refuses_invalid_document(api, workspace):
    response = api.post(
        SOURCES,
        {"name": "x", "document": {"swagger": "2.0"}, "base_url": "https://a.example"},
        format="json",
    )
    assert_error(response, 400, "invalid_openapi")
    assert OpenApiSource.objects.count() == 0


def test_disable_tool_removes_it_from_runs(api, workspace):
    api.get(TOOLS)
    from apps.skills.selectors import tool_specs_for

    tool = Tool.objects.get(workspace=workspace, builtin="web_fetch")
    response = api.patch(f"{TOOLS}/{tool.id}", {"enabled": False}, format="json")
    assert response.json()["data"]["enabled"] is False
    assert tool_specs_for(workspace_id=workspace.id, tool_ids=[tool.id]) == []
    api.patch(f"{TOOLS}/{tool.id}", {"enabled": True}, format="json")
    assert [s.name for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[tool.id])] == [
        "web_fetch"
    ]


def test_outsiders_get_404_on_tool_endpoints(api, workspace, outsider, web):
    import_pets(api, web)
    tool = Tool.objects.get(name="pets_getPet")
    source = OpenApiSource.objects.get()
    assert_outsiders_get_404(method="get", url=f"{TOOLS}/{tool.id}", outsider=outsider, obj=tool)
    assert_outsiders_get_404(
        method="patch",
        url=f"{TOOLS}/{tool.id}",
        outsider=outsider,
        obj=tool,
        data={"enabled": False},
    )
    assert_outsiders_get_404(
        method="post",
        url=f"{TOOLS}/{tool.id}/exec",
        outsider=outsider,
        obj=tool,
        data={"arguments": {"pet_id": 1}},
    )
    assert_outsiders_get_404(
        method="get", url=f"{SOURCES}/{source.id}", outsider=outsider, obj=source
    )
    assert_outsiders_get_404(
        method="delete", url=f"{SOURCES}/{source.id}", outsider=outsider, obj=source
    )
    seen = len(Handler.seen)
    assert len(Handler.seen) == seen
    assert not AuditEvent.objects.filter(action="tool.exec").exists()
    # other workspace's tools are not served to its runs either
    from apps.skills.selectors import tool_specs_for
    from apps.users.models import User

    other_ws = User.objects.get(email="mallory@example.com").memberships.get().workspace
    assert tool_specs_for(workspace_id=other_ws.id, tool_ids=[tool.id]) == []


def test_skill_import_from_url(api, workspace, web):
    from apps.skills.models import Skill

    response = api.post("/api/v1/skills/import", {"url": f"{web}/skill.zip"}, format="json")
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert (data["name"], data["source"], data["source_url"]) == (
        "pdf-tools",
        "url",
        f"{web}/skill.zip",
    )
    assert [f["path"] for f in data["files"]] == ["reference/tables.md", "scripts/extract.py"]
    response = api.post("/api/v1/skills/import", {"url": f"{web}/SKILL.md"}, format="json")
    assert response.json()["data"]["name"] == "from-url"
    assert Skill.objects.count() == 2
    response = api.post("/api/v1/skills/import", {"url": f"{web}/to-private"}, format="json")
    body = assert_error(response, 400, "url_not_allowed")  # the redirect is checked too
    assert body["error"]["message"].startswith("10.1.2.3 is a private")
    response = api.post(
        "/api/v1/skills/import", {"url": "http://10.0.0.5/skill.zip"}, format="json"
    )
    assert_error(response, 400, "url_not_allowed")
    assert Skill.objects.count() == 2


def test_openapi_import_from_uploaded_yaml(api, workspace, web):
    import io

    import yaml

    upload = io.BytesIO(yaml.safe_dump(OPENAPI).encode())
    upload.name = "pets.yaml"
    response = api.post(
        SOURCES,
        {"name": "petsyaml", "file": upload, "base_url": web},
        format="multipart",
    )
    assert response.status_code == 201, response.content
    assert sorted(Tool.objects.filter(source="openapi").values_list("name", flat=True)) == [
        "petsyaml_createPet",
        "petsyaml_getPet",
    ]
