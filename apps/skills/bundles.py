"""Reading skill bundles: SKILL.md front matter and ZIP archives, refusing anything unsafe.

Nothing here touches the file system: archives are read in memory with caps on what is
actually decompressed, and the files end up as SkillFile rows.
"""

import io
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

import yaml
from django.conf import settings

from apps.core.untrusted import UntrustedInputError, yaml_load
from apps.skills.exceptions import InvalidSkill, UnsafeArchive

SKILL_FILE = "SKILL.md"
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(\r?\n|\Z)", re.DOTALL)
_DRIVE_RE = re.compile(r"^[A-Za-z]:")


def limit(name: str) -> int:
    defaults = {
        "SKILL_MAX_FILES": 500,
        "SKILL_MAX_TOTAL_BYTES": 20 * 1024 * 1024,
        "SKILL_MAX_FILE_BYTES": 10 * 1024 * 1024,
        "SKILL_MAX_COMPRESSION_RATIO": 100,
        "SKILL_MAX_FRONT_MATTER_DEPTH": 20,
    }
    return int(getattr(settings, name, defaults[name]))


@dataclass
class ParsedSkill:
    name: str
    description: str
    metadata: dict[str, Any]
    skill_md: str
    files: dict[str, bytes] = field(default_factory=dict)

    @property
    def total_size(self) -> int:
        return len(self.skill_md.encode()) + sum(len(c) for c in self.files.values())


def parse_skill_md(text: str) -> tuple[str, str, dict[str, Any]]:
    """(name, description, front matter) of a SKILL.md. Raises InvalidSkill (also for
    YAML anchors/aliases, which could expand a few bytes into megabytes, and for front
    matter nested deeper than SKILL_MAX_FRONT_MATTER_DEPTH)."""
    match = _FRONT_MATTER_RE.match(text.lstrip("\ufeff"))
    if match is None:
        raise InvalidSkill(
            "SKILL.md must start with YAML front matter between '---' lines.", field="skill_md"
        )
    try:
        meta = yaml_load(match.group(1), max_depth=limit("SKILL_MAX_FRONT_MATTER_DEPTH"))
    except UntrustedInputError as exc:
        raise InvalidSkill(
            f"SKILL.md front matter is not accepted: {exc}", field="skill_md"
        ) from exc
    except yaml.YAMLError as exc:
        raise InvalidSkill(
            f"SKILL.md front matter is not valid YAML: {exc}", field="skill_md"
        ) from exc
    if not isinstance(meta, dict):
        raise InvalidSkill("SKILL.md front matter must be a YAML mapping.", field="skill_md")
    name = meta.get("name")
    description = meta.get("description")
    if not isinstance(name, str) or not NAME_RE.match(name) or len(name) > 64:
        raise InvalidSkill(
            "SKILL.md front matter needs a 'name' of lowercase letters, digits and hyphens "
            "(at most 64 characters).",
            field="skill_md",
        )
    if not isinstance(description, str) or not description.strip() or len(description) > 1024:
        raise InvalidSkill(
            "SKILL.md front matter needs a 'description' (1 to 1024 characters).",
            field="skill_md",
        )
    safe_meta = {str(k): v for k, v in meta.items()}
    return name, description.strip(), _jsonable(safe_meta)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def parse_skill_text(text: str) -> ParsedSkill:
    """A skill made of a SKILL.md alone."""
    name, description, meta = parse_skill_md(text)
    return ParsedSkill(name=name, description=description, metadata=meta, skill_md=text)


def safe_member_path(raw: str) -> str:
    """The normalised relative path of an archive member. Raises UnsafeArchive for
    absolute paths, drive letters and any '..' component."""
    name = raw.replace("\\", "/")
    if name.startswith("/") or _DRIVE_RE.match(name):
        raise UnsafeArchive(f"Absolute path in archive: {raw!r}.", field="file")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeArchive(f"Path traversal in archive: {raw!r}.", field="file")
    if any("\x00" in p for p in parts):
        raise UnsafeArchive(f"Invalid path in archive: {raw!r}.", field="file")
    return str(PurePosixPath(*parts)) if parts else ""


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return stat.S_ISLNK(mode)


def _read_capped(archive: zipfile.ZipFile, info: zipfile.ZipInfo, budget: int) -> bytes:
    """Decompress one member, never more than its declared size nor the remaining budget
    (a lying header cannot make us inflate more)."""
    cap = min(info.file_size, budget, limit("SKILL_MAX_FILE_BYTES"))
    out = io.BytesIO()
    try:
        with archive.open(info) as fh:
            while True:
                chunk = fh.read(64 * 1024)
                if not chunk:
                    break
                if out.tell() + len(chunk) > cap:
                    raise UnsafeArchive(
                        f"{info.filename!r} inflates beyond its declared or allowed size.",
                        field="file",
                    )
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise UnsafeArchive(f"{info.filename!r} is corrupt: {exc}.", field="file") from exc
    return out.getvalue()


def parse_skill_zip(data: bytes) -> ParsedSkill:
    """Read a skill ZIP. Refuses (UnsafeArchive / InvalidSkill) traversal, absolute paths,
    symlinks, encrypted members, too many files, too large or too compressed content, and a
    missing or invalid SKILL.md. A single top-level folder is stripped."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise UnsafeArchive("The upload is not a valid ZIP archive.", field="file") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > limit("SKILL_MAX_FILES"):
            raise UnsafeArchive(
                f"The archive has {len(infos)} entries; at most {limit('SKILL_MAX_FILES')} "
                "are allowed.",
                field="file",
            )
        members: list[tuple[str, zipfile.ZipInfo]] = []
        declared_total = 0
        for info in infos:
            path = safe_member_path(info.filename)
            if _is_symlink(info):
                raise UnsafeArchive(f"Symbolic link in archive: {info.filename!r}.", field="file")
            if info.flag_bits & 0x1:
                raise UnsafeArchive(f"Encrypted member: {info.filename!r}.", field="file")
            if info.is_dir() or not path:
                continue
            declared_total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if info.file_size > 1024 * 1024 and ratio > limit("SKILL_MAX_COMPRESSION_RATIO"):
                raise UnsafeArchive(
                    f"{info.filename!r} is compressed {ratio:.0f}:1; at most "
                    f"{limit('SKILL_MAX_COMPRESSION_RATIO')}:1 is allowed.",
                    field="file",
                )
            if info.file_size > limit("SKILL_MAX_FILE_BYTES"):
                raise UnsafeArchive(
                    f"{info.filename!r} is larger than {limit('SKILL_MAX_FILE_BYTES')} bytes.",
                    field="file",
                )
            members.append((path, info))
        if declared_total > limit("SKILL_MAX_TOTAL_BYTES"):
            raise UnsafeArchive(
                f"The archive expands to {declared_total} bytes; at most "
                f"{limit('SKILL_MAX_TOTAL_BYTES')} are allowed.",
                field="file",
            )
        # Strip one shared top-level folder ("my-skill/SKILL.md" -> "SKILL.md").
        tops = {p.split("/", 1)[0] for p, _ in members}
        if len(tops) == 1 and all("/" in p for p, _ in members):
            prefix = next(iter(tops)) + "/"
            members = [(p[len(prefix) :], i) for p, i in members]
        files: dict[str, bytes] = {}
        budget = limit("SKILL_MAX_TOTAL_BYTES")
        for path, info in members:
            if path in files:
                raise UnsafeArchive(f"Duplicate path in archive: {path!r}.", field="file")
            content = _read_capped(archive, info, budget)
            budget -= len(content)
            files[path] = content
    if SKILL_FILE not in files:
        raise InvalidSkill("The archive has no SKILL.md at its root.", field="file")
    try:
        skill_md = files.pop(SKILL_FILE).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSkill("SKILL.md is not UTF-8 text.", field="file") from exc
    name, description, meta = parse_skill_md(skill_md)
    return ParsedSkill(
        name=name, description=description, metadata=meta, skill_md=skill_md, files=files
    )
