"""Install an operator (system) skill offered to every workspace."""

import io
import zipfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.exceptions import ApplicationError
from apps.skills.bundles import parse_skill_text, parse_skill_zip
from apps.skills.choices import SkillSource
from apps.skills.services import skill_save


def _zip_folder(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_symlink():
                raise CommandError(f"{path} is a symbolic link; skills cannot contain links.")
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buf.getvalue()


class Command(BaseCommand):
    help = "Install a system skill from a ZIP, a folder or a SKILL.md (a new version if it exists)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="A .zip, a folder containing SKILL.md, or a SKILL.md")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["path"])
        if not path.exists():
            raise CommandError(f"{path} does not exist.")
        try:
            if path.is_dir():
                parsed = parse_skill_zip(_zip_folder(path))
            elif path.suffix.lower() == ".zip":
                parsed = parse_skill_zip(path.read_bytes())
            else:
                parsed = parse_skill_text(path.read_text(encoding="utf-8"))
            version = skill_save(
                workspace=None, user=None, parsed=parsed, source=SkillSource.SYSTEM
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Installed system skill {version.name} v{version.number}.")
