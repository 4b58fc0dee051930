import io
import zipfile

from apps.skills.models import StdioCommand
from tests.mcp_server.fixtures import stdio_command_args

SKILL_MD = """---
name: pdf-tools
description: Extract text and tables from PDF files.
license: MIT
---
# PDF tools

Use `scripts/extract.py` to pull text out. See `reference/tables.md` for tables.
"""


def skill_md(name: str = "pdf-tools", description: str = "Extract text and tables.") -> str:
    return f"---\nname: {name}\ndescription: {description}\n---\n# {name}\n\nBody.\n"


def make_zip(files: dict[str, bytes | str], *, symlinks: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files.items():
            archive.writestr(path, content)
        for path, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(path)
            info.external_attr = 0o120777 << 16
            archive.writestr(info, target)
    return buf.getvalue()


def skill_zip(**extra: bytes | str) -> bytes:
    files: dict[str, bytes | str] = {
        "pdf-tools/SKILL.md": SKILL_MD,
        "pdf-tools/scripts/extract.py": "print('never run by the platform')\n",
        "pdf-tools/reference/tables.md": "# Tables\nUse camelot.\n",
    }
    files.update(extra)
    return make_zip(files)


def stdio_command(name: str = "test-server") -> StdioCommand:
    command, args, cwd = stdio_command_args()
    return StdioCommand.objects.create(name=name, command=command, args=args, cwd=cwd)
