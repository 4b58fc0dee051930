import io
import os

import pytest

from apps.core.tools import ToolContext
from apps.skills.models import Skill, SkillFile, SkillVersion
from apps.skills.selectors import skill_versions_behind, skills_prompt, tool_specs_for
from tests.helpers import assert_error, assert_outsiders_get_404
from tests.skills.factories import SKILL_MD, make_zip, skill_md, skill_zip

UPLOAD = "/api/v1/skills/upload"


def upload(api, data: bytes, name: str = "skill.zip"):
    return api.post(UPLOAD, {"file": io.BytesIO(data)}, format="multipart")


def upload_named(api, data: bytes):
    f = io.BytesIO(data)
    f.name = "skill.zip"
    return api.post(UPLOAD, {"file": f}, format="multipart")


def counts():
    return (Skill.objects.count(), SkillVersion.objects.count(), SkillFile.objects.count())


def test_zip_upload_creates_skill_with_files(api, workspace):
    response = upload_named(api, skill_zip())
    assert response.status_code == 201, response.content
    data = response.json()["data"]
    assert data["name"] == "pdf-tools"
    assert data["number"] == 1
    assert data["description"] == "Extract text and tables from PDF files."
    assert data["metadata"] == {
        "name": "pdf-tools",
        "description": "Extract text and tables from PDF files.",
        "license": "MIT",
    }
    assert data["skill_md"] == SKILL_MD
    assert data["files"] == [
        {"path": "reference/tables.md", "size": 22},
        {"path": "scripts/extract.py", "size": 35},
    ]
    skill = Skill.objects.get()
    assert skill.workspace_id == workspace.id
    assert skill.latest_version == 1


def test_second_upload_is_a_new_version_and_pinned_versions_are_offered_it(api, workspace):
    v1 = upload_named(api, skill_zip()).json()["data"]
    changed = SKILL_MD.replace("Extract text and tables from PDF files.", "PDF toolkit v2.")
    v2 = upload_named(api, make_zip({"SKILL.md": changed})).json()["data"]
    assert v2["number"] == 2
    assert v2["skill_id"] == v1["skill_id"]
    assert v2["files"] == []
    behind = skill_versions_behind(workspace_id=workspace.id, version_ids=[v1["id"], v2["id"]])
    assert [(str(a.id), str(b.id)) for a, b in behind] == [(v1["id"], v2["id"])]
    response = api.get(f"/api/v1/skills/{v1['skill_id']}/versions")
    assert [v["number"] for v in response.json()["data"]] == [2, 1]
    response = api.get(f"/api/v1/skills/{v1['skill_id']}/versions/1")
    assert response.json()["data"]["description"] == "Extract text and tables from PDF files."


def test_create_and_edit_skill_md_through_the_api(api, workspace):
    response = api.post("/api/v1/skills", {"skill_md": skill_md("notes")}, format="json")
    assert response.status_code == 201
    skill_id = response.json()["data"]["skill_id"]
    response = api.patch(
        f"/api/v1/skills/{skill_id}",
        {"skill_md": skill_md("notes", "Better notes.")},
        format="json",
    )
    assert response.status_code == 200
    assert response.json()["data"]["number"] == 2
    response = api.get(f"/api/v1/skills/{skill_id}")
    body = response.json()["data"]
    assert body["skill"]["description"] == "Better notes."
    assert body["version"]["number"] == 2
    # Renaming through the front matter is refused.
    response = api.patch(
        f"/api/v1/skills/{skill_id}", {"skill_md": skill_md("other")}, format="json"
    )
    assert_error(response, 400, "invalid_skill")
    assert Skill.objects.get(id=skill_id).latest_version == 2


@pytest.mark.parametrize(
    "text",
    [
        "# no front matter",
        "---\nname: Bad Name\ndescription: x\n---\n",
        "---\nname: ok\n---\n",
        "---\n[unclosed\n---\n",
        "---\n- a list\n---\n",
    ],
)
def test_invalid_skill_md_is_refused(api, workspace, text):
    response = api.post("/api/v1/skills", {"skill_md": text}, format="json")
    assert_error(response, 400, "invalid_skill")
    assert counts() == (0, 0, 0)


def _yaml_bomb(levels: int = 6) -> str:
    """428 bytes or so of front matter whose aliases expand ten times per level."""
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        refs = ",".join([f"*a{i - 1}"] * 10)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return "---\nname: bomb\ndescription: Expands.\n" + "\n".join(lines) + "\n---\nBody\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _yaml_bomb(),
            "SKILL.md front matter is not accepted: "
            "YAML anchors and aliases are not allowed (line 3).",
        ),
        (
            "---\nname: deep\ndescription: Deep.\nx: " + "[" * 5000 + "]" * 5000 + "\n---\n",
            "SKILL.md front matter is not accepted: It is nested deeper than 20 levels.",
        ),
        (
            "---\nname: deep\ndescription: Deep.\nx:\n"
            + "".join("  " * i + f"k{i}:\n" for i in range(1, 30))
            + "---\n",
            "SKILL.md front matter is not accepted: It is nested deeper than 20 levels.",
        ),
    ],
    ids=["alias-bomb", "deep-flow", "deep-block"],
)
def test_hostile_front_matter_is_refused_naming_the_field(api, workspace, text, message):
    response = api.post("/api/v1/skills", {"skill_md": text}, format="json")
    body = assert_error(response, 400, "invalid_skill")
    assert body["error"]["details"] == [{"field": "skill_md", "message": message}]
    assert counts() == (0, 0, 0)
    # The same file inside an archive is refused the same way.
    response = upload(api, make_zip({"SKILL.md": text}))
    body = assert_error(response, 400, "invalid_skill")
    assert body["error"]["details"][0]["message"] == message
    assert counts() == (0, 0, 0)


def test_front_matter_at_the_depth_limit_is_accepted(api, workspace):
    text = "---\nname: nested\ndescription: Nested.\nx: " + "[" * 18 + "1" + "]" * 18 + "\n---\n"
    response = api.post("/api/v1/skills", {"skill_md": text}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["data"]["metadata"]["x"] == [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]


def _bomb_by_ratio() -> bytes:
    return make_zip({"SKILL.md": SKILL_MD, "zeros.bin": b"\0" * (5 * 1024 * 1024)})


def _too_many_files(settings) -> bytes:
    settings.SKILL_MAX_FILES = 10
    return make_zip({"SKILL.md": SKILL_MD, **{f"f{i}.txt": "x" for i in range(10)}})


def _too_large(settings) -> bytes:
    settings.SKILL_MAX_TOTAL_BYTES = 50_000
    return make_zip({"SKILL.md": SKILL_MD, "big.bin": os.urandom(60_000)})


@pytest.mark.parametrize(
    ("case", "code", "message"),
    [
        ("traversal", "unsafe_archive", "Path traversal in archive: '../evil.txt'."),
        ("nested_traversal", "unsafe_archive", "Path traversal in archive: 'a/../../evil.txt'."),
        ("backslash", "unsafe_archive", "Path traversal in archive: '..\\\\evil.txt'."),
        ("absolute", "unsafe_archive", "Absolute path in archive: '/tmp/evil.txt'."),
        ("drive", "unsafe_archive", "Absolute path in archive: 'C:/evil.txt'."),
        ("symlink", "unsafe_archive", "Symbolic link in archive: 'link'."),
        ("ratio", "unsafe_archive", None),
        ("count", "unsafe_archive", "The archive has 11 entries; at most 10 are allowed."),
        ("size", "unsafe_archive", None),
        ("missing", "invalid_skill", "The archive has no SKILL.md at its root."),
        ("invalid", "invalid_skill", None),
        ("not_zip", "unsafe_archive", "The upload is not a valid ZIP archive."),
    ],
)
def test_malicious_zip_is_refused_and_nothing_is_written(
    api, workspace, settings, tmp_path, monkeypatch, case, code, message
):
    settings.MEDIA_ROOT = tmp_path / "media"
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # a relative path written by mistake would land here
    archives = {
        "traversal": lambda: make_zip({"SKILL.md": SKILL_MD, "../evil.txt": "pwned"}),
        "nested_traversal": lambda: make_zip({"SKILL.md": SKILL_MD, "a/../../evil.txt": "x"}),
        "backslash": lambda: make_zip({"SKILL.md": SKILL_MD, "..\\evil.txt": "x"}),
        "absolute": lambda: make_zip({"SKILL.md": SKILL_MD, "/tmp/evil.txt": "x"}),
        "drive": lambda: make_zip({"SKILL.md": SKILL_MD, "C:/evil.txt": "x"}),
        "symlink": lambda: make_zip({"SKILL.md": SKILL_MD}, symlinks={"link": "/etc/passwd"}),
        "ratio": _bomb_by_ratio,
        "count": lambda: _too_many_files(settings),
        "size": lambda: _too_large(settings),
        "missing": lambda: make_zip({"README.md": "no skill here"}),
        "invalid": lambda: make_zip({"SKILL.md": "---\nname: 12 Bad\n---\n"}),
        "not_zip": lambda: b"this is not a zip",
    }
    response = upload_named(api, archives[case]())
    body = assert_error(response, 400, code)
    if message:
        assert body["error"]["message"] == message
    assert body["error"]["details"][0]["field"] in ("file", "skill_md")
    assert counts() == (0, 0, 0)
    # Nothing was written anywhere: not under MEDIA_ROOT, not next to the working directory.
    assert not (tmp_path / "media").exists()
    assert list(work.iterdir()) == []
    assert not (tmp_path / "evil.txt").exists()


def test_ratio_bomb_message(api, workspace):
    body = assert_error(upload_named(api, _bomb_by_ratio()), 400, "unsafe_archive")
    assert body["error"]["message"].startswith("'zeros.bin' is compressed ")
    assert body["error"]["message"].endswith(":1; at most 100:1 is allowed.")


def test_lying_zip_header_cannot_inflate_more_than_declared(api, workspace):
    """A member whose header under-declares its size is stopped while decompressing."""
    data = bytearray(make_zip({"SKILL.md": SKILL_MD, "x.txt": b"a" * 5000}))
    # Patch the central directory's uncompressed size of x.txt to 10 bytes.
    # The last central directory entry is x.txt's; bytes 24-28 hold its uncompressed size.
    cd_start = bytes(data).rfind(b"PK\x01\x02")
    data[cd_start + 24 : cd_start + 28] = (10).to_bytes(4, "little")
    body = assert_error(upload_named(api, bytes(data)), 400, "unsafe_archive")
    assert body["error"]["message"].startswith("'x.txt' is corrupt: Bad CRC-32")
    assert counts() == (0, 0, 0)


def test_load_skill_and_read_skill_file_tools(api, workspace):
    version = upload_named(api, skill_zip()).json()["data"]
    prompt = skills_prompt(workspace_id=workspace.id, skill_ids=[version["id"]])
    assert prompt.endswith("- pdf-tools: Extract text and tables from PDF files.")
    assert "SKILL.md" not in prompt and "camelot" not in prompt
    specs = {
        s.name: s
        for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[], skill_ids=[version["id"]])
    }
    assert sorted(specs) == ["load_skill", "read_skill_file"]
    assert specs["load_skill"].parameters["properties"]["name"]["enum"] == ["pdf-tools"]
    ctx = ToolContext(workspace_id=workspace.id, user_id=None)
    from asgiref.sync import async_to_sync

    loaded = async_to_sync(specs["load_skill"].execute)({"name": "pdf-tools"}, ctx)
    assert loaded.is_error is False
    assert loaded.content.startswith(SKILL_MD)
    assert loaded.content.endswith("- reference/tables.md\n- scripts/extract.py")
    read = async_to_sync(specs["read_skill_file"].execute)(
        {"skill": "pdf-tools", "path": "reference/tables.md"}, ctx
    )
    assert (read.content, read.is_error) == ("# Tables\nUse camelot.\n", False)
    missing = async_to_sync(specs["read_skill_file"].execute)(
        {"skill": "pdf-tools", "path": "../../etc/passwd"}, ctx
    )
    assert missing.is_error is True
    assert missing.content == "The skill 'pdf-tools' has no file '../../etc/passwd'."
    unknown = async_to_sync(specs["load_skill"].execute)({"name": "other"}, ctx)
    assert unknown.is_error is True


def test_pinned_version_is_what_the_tools_serve(api, workspace):
    v1 = upload_named(api, skill_zip()).json()["data"]
    changed = SKILL_MD.replace("# PDF tools", "# PDF tools, second edition")
    upload_named(api, make_zip({"SKILL.md": changed}))
    specs = {
        s.name: s
        for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[], skill_ids=[v1["id"]])
    }
    ctx = ToolContext(workspace_id=workspace.id, user_id=None)
    from asgiref.sync import async_to_sync

    loaded = async_to_sync(specs["load_skill"].execute)({"name": "pdf-tools"}, ctx)
    assert "second edition" not in loaded.content
    latest = {
        s.name: s
        for s in tool_specs_for(workspace_id=workspace.id, tool_ids=[], skill_ids=[v1["skill_id"]])
    }
    loaded = async_to_sync(latest["load_skill"].execute)({"name": "pdf-tools"}, ctx)
    assert "second edition" in loaded.content


def test_other_workspace_skills_are_not_served_to_runs(api, workspace, outsider):
    version = upload_named(api, skill_zip()).json()["data"]
    from apps.users.models import User

    other = User.objects.get(email="mallory@example.com")
    other_ws = other.memberships.get().workspace
    assert tool_specs_for(workspace_id=other_ws.id, tool_ids=[], skill_ids=[version["id"]]) == []
    assert skills_prompt(workspace_id=other_ws.id, skill_ids=[version["skill_id"]]) == ""


def test_system_skills_are_listed_for_every_workspace(api, workspace, outsider):
    from apps.skills.bundles import parse_skill_text
    from apps.skills.services import skill_save

    skill_save(
        workspace=None, user=None, parsed=parse_skill_text(skill_md("house-style")), source="system"
    )
    assert [s["name"] for s in api.get("/api/v1/skills").json()["data"]] == ["house-style"]
    assert [s["is_system"] for s in outsider.get("/api/v1/skills").json()["data"]] == [True]
    skill = Skill.objects.get()
    response = api.delete(f"/api/v1/skills/{skill.id}")
    assert_error(response, 400, "invalid_skill")
    assert Skill.objects.count() == 1


def test_outsiders_get_404_on_skill_endpoints(api, workspace, outsider):
    version = upload_named(api, skill_zip()).json()["data"]
    skill = Skill.objects.get()
    base = f"/api/v1/skills/{skill.id}"
    assert_outsiders_get_404(method="get", url=base, outsider=outsider, obj=skill)
    assert_outsiders_get_404(
        method="patch",
        url=base,
        outsider=outsider,
        obj=skill,
        data={"skill_md": skill_md("pdf-tools")},
    )
    assert_outsiders_get_404(method="delete", url=base, outsider=outsider, obj=skill)
    assert_outsiders_get_404(method="get", url=f"{base}/versions", outsider=outsider, obj=skill)
    assert_outsiders_get_404(method="get", url=f"{base}/versions/1", outsider=outsider, obj=skill)
    assert version["number"] == 1


def test_delete_skill(api, workspace):
    upload_named(api, skill_zip())
    skill = Skill.objects.get()
    assert api.delete(f"/api/v1/skills/{skill.id}").status_code == 204
    assert counts() == (0, 0, 0)


def test_viewer_cannot_upload(workspace, client_for):
    from apps.users.choices import Role
    from tests.users.factories import add_member

    viewer = add_member(workspace=workspace, role=Role.VIEWER).user
    client = client_for(viewer)
    f = io.BytesIO(skill_zip())
    f.name = "s.zip"
    response = client.post(
        UPLOAD, {"file": f}, format="multipart", HTTP_X_WORKSPACE_ID=str(workspace.id)
    )
    assert_error(response, 403, "forbidden")
    assert counts() == (0, 0, 0)


def test_skill_install_command_adds_system_skill_versions(workspace, tmp_path):
    from django.core.management import call_command

    folder = tmp_path / "house-style"
    (folder / "reference").mkdir(parents=True)
    (folder / "SKILL.md").write_text(skill_md("house-style", "Our writing rules."))
    (folder / "reference" / "words.md").write_text("Avoid jargon.")
    out = io.StringIO()
    call_command("skill_install", str(folder), stdout=out)
    assert out.getvalue().strip() == "Installed system skill house-style v1."
    call_command("skill_install", str(folder / "SKILL.md"), stdout=out)
    skill = Skill.objects.get()
    assert (skill.workspace_id, skill.latest_version) == (None, 2)
    assert [f.path for f in skill.versions.get(number=1).files.all()] == ["reference/words.md"]
