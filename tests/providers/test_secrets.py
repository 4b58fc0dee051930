"""A planted canary key never shows up in a response, a log line, a Celery message, the
admin, or the database in clear."""

import logging

import pytest
from asgiref.sync import async_to_sync
from celery.signals import before_task_publish, task_prerun
from django.core.management import call_command
from django.db import connection

from apps.providers import services
from apps.providers.exceptions import ProviderAuthFailed
from apps.providers.models import Provider, ProviderKey
from apps.providers.scripted import Reply
from apps.providers.types import UsageContext
from tests.providers.factories import make_scripted_provider

pytestmark = pytest.mark.django_db

CANARY = "sk-CANARY-7f3a9c1e5b2d4f60a8e1"


@pytest.fixture
def celery_messages():
    seen = []

    def on_publish(sender=None, body=None, headers=None, **kwargs):
        seen.append(repr((sender, body, headers)))

    def on_prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra):
        seen.append(repr((task.name if task else sender, args, kwargs)))

    before_task_publish.connect(on_publish, weak=False)
    task_prerun.connect(on_prerun, weak=False)
    yield seen
    before_task_publish.disconnect(on_publish)
    task_prerun.disconnect(on_prerun)


def test_canary_key_never_leaks(
    api, admin_client, workspace, scripted_llm, caplog, celery_messages
):
    caplog.set_level(logging.DEBUG)
    bodies = []

    response = api.post(
        "/api/v1/providers",
        {
            "name": "Canary",
            "kind": "openai",
            "base_url": scripted_llm.base_url,
            "api_keys": [CANARY],
        },
        format="json",
    )
    assert response.status_code == 201
    bodies.append(response.content)
    provider = Provider.objects.get(name="Canary")
    url = f"/api/v1/providers/{provider.id}"
    response = api.post(f"{url}/models", {"name": "scripted-chat"}, format="json")
    bodies.append(response.content)
    model_id = response.json()["data"]["id"]
    bodies.append(api.get("/api/v1/providers").content)
    bodies.append(api.get(url).content)

    # Failures of every kind, through the API and the runtime.
    for status in (401, 400, 500):
        scripted_llm.push(
            Reply(status=status, error_message=f"Incorrect API key provided: {CANARY}")
        )
        bodies.append(api.post(f"{url}/verify", {}, format="json").content)
    scripted_llm.push(Reply(status=401, error_message=f"bad key {CANARY}"))
    bodies.append(api.get(f"{url}/upstream-models").content)
    scripted_llm.push(Reply(status=429), Reply(status=401, error_message=f"key {CANARY} revoked"))
    with pytest.raises(ProviderAuthFailed) as info:
        async_to_sync(services.chat_complete)(
            workspace_id=workspace.id,
            model_id=model_id,
            messages=[{"role": "user", "content": "hi"}],
            usage=UsageContext(workspace_id=workspace.id),
        )
    assert CANARY not in str(info.value) and CANARY not in repr(info.value)
    scripted_llm.push(Reply(status=400, error_message=f"echo {CANARY}"))
    with pytest.raises(Exception) as info:
        async_to_sync(services.chat_complete)(
            workspace_id=workspace.id,
            model_id=model_id,
            messages=[{"role": "user", "content": "hi"}],
            usage=UsageContext(workspace_id=workspace.id),
        )
    assert CANARY not in str(info.value)
    bodies.append(b"".join(api.get("/api/v1/usage/export").streaming_content))
    bodies.append(admin_client.get(f"/admin/providers/provider/{provider.id}/change/").content)
    bodies.append(admin_client.get("/admin/providers/provider/").content)
    call_command("rotate_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115

    # The key was really used (so the test could have caught a leak).
    assert any(
        e["headers"].get("authorization") == f"Bearer {CANARY}" for e in scripted_llm.request_log
    )
    for body in bodies:
        assert CANARY.encode() not in body
    assert caplog.records
    for record in caplog.records:
        assert CANARY not in record.getMessage()
        assert CANARY not in repr(record.args)
        assert CANARY not in (record.exc_text or "")
    assert CANARY not in caplog.text
    for message in celery_messages:
        assert CANARY not in message
    # At rest: encrypted.
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secret FROM {ProviderKey._meta.db_table}")
        stored = [row[0] for row in cursor.fetchall()]
    assert stored and all(CANARY not in value for value in stored)
    assert ProviderKey.objects.get().secret == CANARY


def test_rotate_secrets_re_encrypts_with_the_newest_key(settings, workspace, scripted_llm):
    from cryptography.fernet import Fernet

    from apps.core import crypto

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.SECRET_ENCRYPTION_KEYS = [old]
    crypto._fernet.cache_clear()
    try:
        provider, _, _ = make_scripted_provider(
            workspace=workspace, scripted_llm=scripted_llm, api_keys=(CANARY,)
        )
        settings.SECRET_ENCRYPTION_KEYS = [new, old]
        crypto._fernet.cache_clear()
        call_command("rotate_secrets", stdout=open("/dev/null", "w"))  # noqa: SIM115
        settings.SECRET_ENCRYPTION_KEYS = [new]  # the old key is dropped
        crypto._fernet.cache_clear()
        assert provider.keys.get().secret == CANARY
    finally:
        crypto._fernet.cache_clear()


def test_admin_key_field_is_write_only(admin_client, workspace, scripted_llm):
    provider, _, _ = make_scripted_provider(
        workspace=workspace, scripted_llm=scripted_llm, api_keys=(CANARY,)
    )
    page = admin_client.get(f"/admin/providers/provider/{provider.id}/change/")
    assert page.status_code == 200
    assert b'type="password"' in page.content
    assert CANARY.encode() not in page.content
    assert b"a8e1" in page.content  # the last four characters, nothing more
