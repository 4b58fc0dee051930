"""Files services: workspace paths, attachment checks, parsing limits, the stale sweep,
and storage cleanup when a workspace goes."""

import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone

from apps.agents import context
from apps.core.exceptions import ValidationFailed
from apps.core.jobs import job_kind_sweep, job_kinds
from apps.files import services
from apps.files.exceptions import (
    AttachmentUnreadable,
    ModelWithoutVision,
    UnsupportedFile,
    WorkspacePathInvalid,
)
from apps.files.models import File
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Workspace
from tests.files.conftest import make_png
from tests.users.factories import UserFactory


def _actor(user, workspace) -> Actor:
    membership = user.memberships.get(workspace=workspace)
    return Actor(user=user, workspace=workspace, role=Role(membership.role))


@pytest.mark.parametrize(
    "path",
    [
        *["../x", "a/../../x", "/etc/passwd", "a\\b", "a//b", "./a", "a/.", "", "  ", "C:/x"],
        *["a\x00b", "/".join(["d"] * 9), "x" * 256, None, 7],
    ],
)
def test_workspace_paths_outside_or_malformed_are_refused(path):
    with pytest.raises(WorkspacePathInvalid):
        services.workspace_path_clean(path)


@pytest.mark.parametrize(
    ("path", "clean"),
    [("notes.md", "notes.md"), (" a/b/c.txt ", "a/b/c.txt"), ("résumé v2.md", "résumé v2.md")],
)
def test_workspace_paths_inside_are_normalised(path, clean):
    assert services.workspace_path_clean(path) == clean


def test_workspace_write_replaces_and_counts(
    user, workspace, settings, local_storage, django_capture_on_commit_callbacks
):
    settings.FILES_AGENT_MAX_FILES = 2
    conversation_id = uuid.uuid4()
    kwargs = {"workspace_id": workspace.id, "owner_id": user.pk, "conversation_id": conversation_id}
    with django_capture_on_commit_callbacks(execute=True):
        first = services.workspace_write(path="a.md", content="one", **kwargs)
        again = services.workspace_write(path="a.md", content="two!", **kwargs)
    assert again.id == first.id
    assert services.file_read_bytes(file=again) == b"two!"
    assert len(local_storage.keys()) == 1  # the replaced bytes are gone
    services.workspace_write(path="b.md", content="b", **kwargs)

    with pytest.raises(ValidationFailed, match="already holds 2 files"):
        services.workspace_write(path="c.md", content="c", **kwargs)
    assert File.objects.count() == 2


def _file(user, workspace, **values) -> File:
    defaults = {
        "workspace": workspace,
        "owner": user,
        "origin": "upload",
        "name": "a.txt",
        "content_type": "text/plain",
        "kind": "document",
        "size": 1,
        "sha256": "0" * 64,
        "storage_key": f"k/{uuid.uuid4()}",
        "status": "ready",
    }
    return File.objects.create(**{**defaults, **values})


def test_attachments_are_checked_and_bound_to_the_conversation(user, workspace):
    actor = _actor(user, workspace)
    conversation_id = uuid.uuid4()
    doc = _file(user, workspace)
    image = _file(user, workspace, name="p.png", kind="image", content_type="image/png")
    other = _file(user, workspace, name="x.bin", kind="other", status="none")
    failed = _file(user, workspace, name="bad.pdf", status="failed", error_message="Corrupt.")
    stranger = UserFactory(email="bob@example.com")
    theirs = _file(stranger, stranger.memberships.get().workspace)

    def prepare(*ids, vision=True):
        return services.attachments_prepare(
            actor=actor,
            attachments=[{"file_id": str(i)} for i in ids],
            accepts_images=vision,
            conversation_id=conversation_id,
        )

    with pytest.raises(ModelWithoutVision):
        prepare(doc.id, image.id, vision=False)
    with pytest.raises(UnsupportedFile):
        prepare(other.id)
    with pytest.raises(ValidationFailed, match=r"bad\.pdf could not be read: Corrupt\."):
        prepare(failed.id)
    with pytest.raises(ValidationFailed, match="There is no file") as caught:
        prepare(doc.id, theirs.id)
    assert caught.value.details[0]["field"] == "attachments[1]"
    with pytest.raises(ValidationFailed, match="attached twice"):
        prepare(doc.id, doc.id)
    with pytest.raises(ValidationFailed) as caught:
        services.attachments_prepare(
            actor=actor, attachments=["nope"], accepts_images=True, conversation_id=conversation_id
        )
    assert caught.value.details[0]["field"] == "attachments[0]"
    assert File.objects.filter(conversation_id=conversation_id).count() == 0

    stored = prepare(doc.id, image.id)

    assert [a["file_id"] for a in stored] == [str(doc.id), str(image.id)]
    assert File.objects.filter(conversation_id=conversation_id).count() == 2
    with pytest.raises(ValidationFailed, match="another conversation"):
        services.attachments_prepare(
            actor=actor,
            attachments=[{"file_id": str(doc.id)}],
            accepts_images=True,
            conversation_id=uuid.uuid4(),
        )


@pytest.mark.django_db(transaction=True)
def test_a_current_attachment_that_failed_or_is_unread_stops_the_turn(user, workspace, settings):
    settings.FILES_PARSE_WAIT_SECONDS = 0.3
    failed = _file(user, workspace, name="bad.pdf", status="failed", error_message="Corrupt.")
    pending = _file(user, workspace, name="slow.pdf", status="pending")

    def history(*files):
        return [
            {
                "role": "user",
                "content": "read",
                "attachments": [{"file_id": str(f.id)} for f in files],
            }
        ]

    expand = async_to_sync(context.with_attachments)
    with pytest.raises(AttachmentUnreadable, match=r"bad\.pdf could not be read: Corrupt\."):
        expand(history(failed), workspace_id=workspace.id, vision=True)
    with pytest.raises(AttachmentUnreadable, match=r"slow\.pdf was still being read after 0\.3"):
        expand(history(pending), workspace_id=workspace.id, vision=True)

    # An earlier message's failure is only noted: the conversation goes on.
    later = [*history(failed), {"role": "assistant", "content": "?"}, history()[0]]
    out, long_documents = expand(later, workspace_id=workspace.id, vision=True)
    assert out[0]["content"] == [
        {"type": "text", "text": "read"},
        {"type": "text", "text": "[Attached file bad.pdf could not be read: Corrupt.]"},
    ]
    assert out[2] is later[2]
    assert long_documents == []


@pytest.mark.django_db(transaction=True)
def test_an_image_for_a_model_without_vision_is_noted_not_sent(user, workspace, local_storage):
    actor = _actor(user, workspace)
    image = services.file_upload(actor=actor, name="p.png", data=make_png())
    history = [{"role": "user", "content": "hi", "attachments": [{"file_id": str(image.id)}]}]

    out, _ = async_to_sync(context.with_attachments)(
        history, workspace_id=workspace.id, vision=False
    )

    assert out[0]["content"][1] == {
        "type": "text",
        "text": "[Attached image p.png: not shown, the model does not accept images.]",
    }


def test_lost_parses_are_requeued_by_the_job_sweep_then_failed(
    user, workspace, local_storage, settings, django_capture_on_commit_callbacks
):
    # The sweep's clock is driven ahead; a requeued parse is not "lost in the queue" yet.
    settings.FILES_PARSE_STALE_SECONDS = 3600
    actor = _actor(user, workspace)
    with django_capture_on_commit_callbacks(execute=False):
        file = services.file_upload(actor=actor, name="a.md", data=b"# A\n\nalpha beta")
    started = timezone.now()
    File.objects.filter(id=file.id).update(status="processing", attempts=1, heartbeat_at=started)
    assert job_kind_sweep(services.PARSE_JOBS, now=started + timedelta(seconds=60)) == 0
    later = started + services.PARSE_JOBS.stale_after() + timedelta(seconds=1)

    with django_capture_on_commit_callbacks(execute=True):
        assert job_kind_sweep(services.PARSE_JOBS, now=later) == 1

    file.refresh_from_db()
    assert (file.status, file.attempts) == ("ready", 2)
    assert file.text == "# A\n\nalpha beta"
    File.objects.filter(id=file.id).update(status="processing", attempts=3, heartbeat_at=started)
    assert job_kind_sweep(services.PARSE_JOBS, now=later) == 1
    file.refresh_from_db()
    assert (file.status, file.error_code) == ("failed", "parse_lost")
    assert file.error_message == "Reading the document was interrupted too many times."


def test_the_parse_job_kind_is_registered_for_the_core_sweep():
    assert services.PARSE_JOBS in job_kinds()


def test_deleting_a_workspace_removes_its_stored_files(
    user, storage, django_capture_on_commit_callbacks
):
    team = Workspace.objects.create(name="Team", created_by=user)
    user.memberships.create(workspace=team, role="owner")
    actor = _actor(user, team)
    services.file_upload(actor=actor, name="a.png", data=make_png())
    services.workspace_write(
        workspace_id=team.id,
        owner_id=user.pk,
        conversation_id=uuid.uuid4(),
        path="n.md",
        content="n",
    )
    assert len(storage.keys()) == 2

    with django_capture_on_commit_callbacks(execute=True):
        team.delete()

    assert File.objects.count() == 0
    assert storage.keys() == []


def test_deleting_a_conversations_files_removes_them_and_their_bytes(
    user, workspace, local_storage, django_capture_on_commit_callbacks
):
    conversation_id = uuid.uuid4()
    for path in ("a.md", "b/c.md"):
        services.workspace_write(
            workspace_id=workspace.id,
            owner_id=user.pk,
            conversation_id=conversation_id,
            path=path,
            content="words " * 50,
        )
    kept = services.file_upload(actor=_actor(user, workspace), name="k.png", data=make_png())

    with django_capture_on_commit_callbacks(execute=True):
        assert services.files_delete_for_conversation(conversation_id=conversation_id) == 2

    assert list(File.objects.values_list("id", flat=True)) == [kept.id]
    assert local_storage.keys() == [kept.storage_key]
    assert services.files_delete_for_conversation(conversation_id=conversation_id) == 0
