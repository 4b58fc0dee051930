"""Turn an uploaded file into text: decide its type by content, guard against bombs.

`sniff()` runs at upload time (cheap, refuses what can never be parsed); `extract_text()`
runs in the ingestion task and raises ParseError with a message a user can read.

PDF, DOCX and HTML are parsed in a child process (`python -m apps.knowledge.parsing`)
with a hard time limit (the child is killed when it runs out), a memory limit and no
secrets in its environment: whatever their parsers do on hostile input (recurse, loop,
allocate, raise anything), the worker only ever sees a ParseError with a readable reason.
Plain text, Markdown, CSV and JSON are parsed in process with bounded, non-recursive code.
"""

import csv
import io
import json
import logging
import os
import resource
import signal
import subprocess
import sys
import time
import traceback
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path, PurePath
from typing import Any

from apps.core.untrusted import UntrustedInputError, check_json_depth, check_xml
from apps.knowledge.choices import FileKind
from apps.knowledge.exceptions import EmptyDocument, ParseError, UnsupportedFileType
from apps.knowledge.limits import limit

logger = logging.getLogger(__name__)

_EXTENSIONS: dict[str, FileKind] = {
    ".txt": FileKind.TEXT,
    ".text": FileKind.TEXT,
    ".log": FileKind.TEXT,
    ".md": FileKind.MARKDOWN,
    ".markdown": FileKind.MARKDOWN,
    ".html": FileKind.HTML,
    ".htm": FileKind.HTML,
    ".pdf": FileKind.PDF,
    ".docx": FileKind.DOCX,
    ".csv": FileKind.CSV,
    ".json": FileKind.JSON,
}
_CONTENT_TYPES: dict[str, FileKind] = {
    "text/plain": FileKind.TEXT,
    "text/markdown": FileKind.MARKDOWN,
    "text/html": FileKind.HTML,
    "application/xhtml+xml": FileKind.HTML,
    "application/pdf": FileKind.PDF,
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": FileKind.DOCX,
    "text/csv": FileKind.CSV,
    "application/json": FileKind.JSON,
}
_BINARY_KINDS = (FileKind.PDF, FileKind.DOCX)
_EXECUTABLE_MAGIC = (
    b"MZ",
    b"\x7fELF",
    b"\xcf\xfa\xed\xfe",
    b"\xfe\xed\xfa\xcf",
    b"\xca\xfe\xba\xbe",
)
_BINARY_MAGIC = (
    b"\x1f\x8b",  # gzip
    b"BZh",
    b"\xfd7zXZ",
    b"7z\xbc\xaf",
    b"Rar!",
    b"\x89PNG",
    b"\xff\xd8\xff",
    b"GIF8",
)


@dataclass(frozen=True)
class Sniffed:
    kind: FileKind
    declared: FileKind | None


def declared_kind(name: str, content_type: str = "") -> FileKind | None:
    """The type a file claims by its extension (else its Content-Type)."""
    suffix = PurePath(name).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    return _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())


def _decode(data: bytes) -> str | None:
    """Text of `data` (UTF-8, UTF-16 with a BOM, else Windows-1252), or None for binary."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    if b"\x00" in data[:8192]:
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    sample = text[:8192]
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in sample)
    return text if printable >= 0.95 * len(sample) else None


def _is_docx(data: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return "word/document.xml" in archive.namelist()
    except zipfile.BadZipFile:
        return False


def _looks_like_html(text: str) -> bool:
    head = text.lstrip()[:512].lower()
    return head.startswith(("<!doctype html", "<html")) or ("<body" in head and "</" in head)


def sniff(*, name: str, data: bytes, content_type: str = "") -> Sniffed:
    """The type of `data` by its content, checked against what its name declares.

    Raises EmptyDocument for an empty file, UnsupportedFileType for executables,
    archives, images and anything whose content contradicts its declared type."""
    if not data.strip():
        raise EmptyDocument(f"{name} is empty.")
    declared = declared_kind(name, content_type)
    if data.startswith(_EXECUTABLE_MAGIC):
        raise UnsupportedFileType(f"{name} is an executable, not a document.")
    if data.startswith(b"%PDF-"):
        actual = FileKind.PDF
    elif data.startswith(b"PK\x03\x04"):
        if not _is_docx(data):
            raise UnsupportedFileType(f"{name} is an archive, not a supported document.")
        actual = FileKind.DOCX
    elif data.startswith(_BINARY_MAGIC):
        raise UnsupportedFileType(f"{name} is a binary file, not a supported document.")
    else:
        text = _decode(data)
        if text is None:
            raise UnsupportedFileType(f"{name} is a binary file, not a supported document.")
        if declared in _BINARY_KINDS:
            raise UnsupportedFileType(
                f"{name} does not contain what its name says ({declared.label})."
            )
        if declared is not None:
            actual = declared
        elif _looks_like_html(text):
            actual = FileKind.HTML
        else:
            actual = FileKind.TEXT
        if actual == FileKind.JSON:
            try:
                check_json_depth(text, max_depth=int(limit("KNOWLEDGE_MAX_NESTING_DEPTH")))
                json.loads(text)
            except UntrustedInputError as exc:
                raise UnsupportedFileType(f"{name} is not accepted: {exc}") from exc
            except ValueError as exc:
                raise UnsupportedFileType(f"{name} is not valid JSON.") from exc
        return Sniffed(kind=actual, declared=declared)
    if declared is not None and declared != actual:
        raise UnsupportedFileType(
            f"{name} does not contain what its name says ({declared.label}); it is {actual.label}."
        )
    return Sniffed(kind=actual, declared=declared)


@dataclass(frozen=True)
class _Limits:
    """The parsing limits, read from settings in the worker and handed to the child."""

    timeout_seconds: float
    memory_bytes: int
    max_pdf_pages: int
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_depth: int

    @classmethod
    def from_settings(cls) -> "_Limits":
        return cls(
            timeout_seconds=float(limit("KNOWLEDGE_PARSE_TIMEOUT_SECONDS")),
            memory_bytes=int(limit("KNOWLEDGE_PARSE_MEMORY_BYTES")),
            max_pdf_pages=int(limit("KNOWLEDGE_MAX_PDF_PAGES")),
            max_uncompressed_bytes=int(limit("KNOWLEDGE_MAX_UNCOMPRESSED_BYTES")),
            max_compression_ratio=float(limit("KNOWLEDGE_MAX_COMPRESSION_RATIO")),
            max_depth=int(limit("KNOWLEDGE_MAX_NESTING_DEPTH")),
        )


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends = time.monotonic() + self.seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise ParseError(f"Parsing took longer than {self.seconds:g} seconds.")


def _pdf_text(data: bytes, deadline: _Deadline, limits: _Limits) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    max_pages = limits.max_pdf_pages
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ParseError("The PDF is encrypted.")
        count = len(reader.pages)
        if count > max_pages:
            raise ParseError(f"The PDF has {count} pages; the limit is {max_pages}.")
        pages = []
        for page in reader.pages:
            deadline.check()
            pages.append(page.extract_text() or "")
    except ParseError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, OSError) as exc:
        raise ParseError(f"The PDF could not be read ({type(exc).__name__}: {exc}).") from exc
    return "\n\n".join(p.strip() for p in pages)


def _check_archive(data: bytes, limits: _Limits) -> None:
    """Refuse zip bombs before any XML is inflated, then read every XML part with a
    hardened parser (no DTD, no entities, bounded depth): a corrupt deflate stream, a
    CRC mismatch, a truncated or not well-formed part or an entity bomb is refused here
    with its part named, before python-docx sees it."""
    max_total = limits.max_uncompressed_bytes
    max_ratio = limits.max_compression_ratio
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile as exc:
        raise ParseError("The DOCX file is corrupt.") from exc
    total = sum(info.file_size for info in infos)
    packed = max(1, sum(info.compress_size for info in infos))
    if total > max_total:
        raise ParseError(f"The DOCX file expands to {total} bytes; the limit is {max_total}.")
    if total / packed > max_ratio:
        raise ParseError(
            f"The DOCX file expands {total / packed:.0f} times; the limit is {max_ratio:g}."
        )
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in infos:
            if not info.filename.endswith((".xml", ".rels")):
                continue
            try:
                part = archive.read(info)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
                raise ParseError(
                    f"The DOCX file is corrupt: {info.filename} cannot be unpacked ({exc})."
                ) from exc
            try:
                check_xml(part, max_depth=limits.max_depth * 2)
            except UntrustedInputError as exc:
                raise ParseError(f"The DOCX file is not accepted: {info.filename}: {exc}") from exc


def _docx_text(data: bytes, deadline: _Deadline, limits: _Limits) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    _check_archive(data, limits)
    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ParseError(f"The DOCX file could not be read ({exc}).") from exc
    lines: list[str] = []
    for paragraph in document.paragraphs:
        deadline.check()
        text = paragraph.text.strip()
        if not text:
            lines.append("")
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if style.startswith("Heading"):
            level = style.removeprefix("Heading").strip()
            depth = int(level) if level.isdigit() else 1
            lines += ["", "#" * min(depth, 6) + " " + text, ""]
        elif style == "Title":
            lines += ["", "# " + text, ""]
        else:
            lines += [text, ""]
    for table in document.tables:
        deadline.check()
        for row in table.rows:
            lines.append(" | ".join(cell.text.strip() for cell in row.cells))
        lines.append("")
    return "\n".join(lines)


def _html_text(text: str) -> str:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(text, "html.parser")
    for tag in soup(["script", "style", "noscript", "template", "svg", "head"]):
        tag.decompose()
    for depth in range(1, 7):
        for heading in soup.find_all(f"h{depth}"):
            heading.replace_with(f"\n\n{'#' * depth} {heading.get_text(' ', strip=True)}\n\n")
    for block in soup.find_all(["p", "li", "tr", "div", "br", "pre", "blockquote"]):
        block.insert_after("\n\n" if block.name in ("p", "div", "pre", "blockquote") else "\n")
    raw = soup.get_text()
    lines = [" ".join(line.split()) for line in raw.splitlines()]
    return "\n".join(lines)


def _csv_text(text: str, deadline: _Deadline) -> str:
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel  # type: ignore[assignment]
    rows = csv.reader(io.StringIO(text), dialect)
    try:
        header = next(rows)
    except StopIteration:
        return ""
    except csv.Error as exc:
        raise ParseError(f"The CSV file could not be read ({exc}).") from exc
    out = []
    try:
        for row in rows:
            deadline.check()
            if not any(cell.strip() for cell in row):
                continue
            pairs = [
                f"{(header[i] if i < len(header) else f'column {i + 1}').strip()}: {cell.strip()}"
                for i, cell in enumerate(row)
            ]
            out.append("; ".join(pairs))
    except csv.Error as exc:
        raise ParseError(f"The CSV file could not be read ({exc}).") from exc
    return "\n\n".join(out) if out else "; ".join(header)


def _json_lines(value: object, path: str, out: list[str]) -> None:
    """One `path: value` line per leaf, depth first, without recursion."""
    stack: list[tuple[object, str]] = [(value, path)]
    while stack:
        item, at = stack.pop()
        if isinstance(item, dict):
            children = [(v, f"{at}.{k}" if at else str(k)) for k, v in item.items()]
            stack.extend(reversed(children))
        elif isinstance(item, list):
            stack.extend(reversed([(v, f"{at}[{i}]") for i, v in enumerate(item)]))
        else:
            out.append(f"{at or 'value'}: {item}")


def _json_text(text: str, limits: _Limits) -> str:
    try:
        check_json_depth(text, max_depth=limits.max_depth)
        value = json.loads(text)
    except UntrustedInputError as exc:
        raise ParseError(f"The JSON file is not accepted: {exc}") from exc
    except ValueError as exc:
        raise ParseError(f"The JSON file could not be read ({exc}).") from exc
    out: list[str] = []
    if isinstance(value, list):
        # A list of records: one paragraph per record, so each becomes its own passage.
        for index, item in enumerate(value):
            lines: list[str] = []
            _json_lines(item, f"[{index}]", lines)
            out.append("\n".join(lines))
        return "\n\n".join(out)
    _json_lines(value, "", out)
    return "\n".join(out)


_ISOLATED_KINDS = (FileKind.PDF, FileKind.DOCX, FileKind.HTML)


def _parse(kind: str, data: bytes, limits: _Limits) -> str:
    deadline = _Deadline(limits.timeout_seconds)
    if kind == FileKind.PDF:
        text = _pdf_text(data, deadline, limits)
    elif kind == FileKind.DOCX:
        text = _docx_text(data, deadline, limits)
    else:
        decoded = _decode(data)
        if decoded is None:
            raise ParseError("The file is not text.")
        if kind == FileKind.HTML:
            text = _html_text(decoded)
        elif kind == FileKind.CSV:
            text = _csv_text(decoded, deadline)
        elif kind == FileKind.JSON:
            text = _json_text(decoded, limits)
        else:
            text = decoded
    deadline.check()
    return text


def _parse_isolated(kind: str, data: bytes, limits: _Limits) -> str:
    """Run `_parse` in a child process killed at the time limit. Raises ParseError."""
    header = json.dumps({"kind": str(kind), "limits": asdict(limits)}).encode() + b"\n"
    root = Path(__file__).resolve().parent.parent.parent
    child = subprocess.Popen(
        [sys.executable, "-m", "apps.knowledge.parsing"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=root,
        # A parser needs no secret: the child gets a bare environment.
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(root), "LANG": "C.UTF-8"},
    )
    try:
        out, err = child.communicate(header + data, timeout=limits.timeout_seconds)
    except subprocess.TimeoutExpired:
        child.kill()
        child.communicate()
        raise ParseError(f"Parsing took longer than {limits.timeout_seconds:g} seconds.") from None
    if child.returncode == -signal.SIGXCPU:
        raise ParseError(f"Parsing took longer than {limits.timeout_seconds:g} seconds.")
    try:
        result = json.loads(out)
    except ValueError:
        logger.warning(
            "parser child exited with %s", child.returncode, extra={"stderr": err[-4000:]}
        )
        raise ParseError(
            "The parser stopped before the end (it needed more memory than allowed, "
            "or crashed on this file)."
        ) from None
    if "error" in result:
        if err:
            logger.info("parser child refused a document", extra={"stderr": err[-4000:]})
        raise ParseError(result["error"])
    return str(result["text"])


def _child_main() -> None:
    """Entry point of the parsing child: a header line (kind, limits) and the file on
    stdin; one JSON object, {"text": ...} or {"error": ...}, on stdout."""
    header = json.loads(sys.stdin.buffer.readline())
    data = sys.stdin.buffer.read()
    limits = _Limits(**header["limits"])
    resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
    cpu = int(limits.timeout_seconds) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    result: dict[str, Any]
    try:
        result = {"text": _parse(header["kind"], data, limits)}
    except ParseError as exc:
        result = {"error": str(exc)}
    except RecursionError:
        result = {"error": "The document is nested too deeply to be read."}
    except MemoryError:
        result = {"error": "The document needs more memory to read than allowed."}
    except Exception as exc:  # noqa: BLE001 -- the sandbox boundary: any parser failure is a readable reason
        traceback.print_exc()
        label = FileKind(header["kind"]).label
        result = {"error": f"The {label} file could not be read ({type(exc).__name__}: {exc})."}
    sys.stdout.write(json.dumps(result))


def extract_text(*, kind: str, data: bytes) -> str:
    """The text of a document of `kind`. Raises ParseError (corrupt, hostile, too big,
    too slow, empty) with a message a user can read; never anything else."""
    limits = _Limits.from_settings()
    if kind in _ISOLATED_KINDS:
        text = _parse_isolated(kind, data, limits)
    else:
        text = _parse(kind, data, limits)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    max_chars = int(limit("KNOWLEDGE_MAX_DOCUMENT_CHARS"))
    if len(text) > max_chars:
        raise ParseError(f"The document has {len(text)} characters; the limit is {max_chars}.")
    if not text.strip():
        raise ParseError("No text could be extracted from the document.")
    return text


if __name__ == "__main__":
    _child_main()
