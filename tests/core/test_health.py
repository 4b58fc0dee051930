import pytest
from django.db import OperationalError

pytestmark = pytest.mark.django_db


def test_active_is_plain_text(client):
    response = client.get("/active")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"ok"


def test_health_reports_every_component_ok(client):
    response = client.get("/api/health")
    assert response.status_code == 200, response.content
    data = response.json()["data"]
    assert data["status"] == "ok"
    assert {c["name"]: c["ok"] for c in data["components"]} == {
        "database": True,
        "cache": True,
        "channel_layer": True,
        "broker": True,
    }


def test_health_is_503_when_the_broker_is_unreachable(client, monkeypatch):
    from config.celery import app

    # A real connection attempt to a port nothing listens on.
    monkeypatch.setattr(app.conf, "broker_url", "redis://127.0.0.1:9/0")
    response = client.get("/api/health")
    assert response.status_code == 503
    components = {c["name"]: c for c in response.json()["data"]["components"]}
    assert components["broker"]["ok"] is False
    assert components["database"]["ok"] is True


def test_health_is_503_when_the_database_is_unreachable(client, monkeypatch):
    from django.db import connection

    def refuse(*args, **kwargs):
        raise OperationalError("could not connect to server")

    monkeypatch.setattr(connection, "cursor", refuse)
    response = client.get("/api/health")
    assert response.status_code == 503
    components = {c["name"]: c for c in response.json()["data"]["components"]}
    assert components["database"] == {"name": "database", "ok": False, "error": "OperationalError"}


def test_root_is_the_console_signed_out_visitors_go_to_sign_in(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/"


def test_console_links_admin_and_api_docs_for_staff(client, user):
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    client.force_login(user)
    html = client.get("/").content.decode()
    for link in ('href="/admin/"', 'href="/api/docs/"'):
        assert link in html


def test_api_docs_and_schema_are_served(client):
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200
    schema = client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    assert schema.json()["openapi"] == "3.1.0"
