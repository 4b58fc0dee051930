"""Turn an uploaded file into text: decide its type by content, guard against bombs.

`sniff()` runs at upload time (cheap, refuses what can never be parsed); `extract_text()`
runs in the ingestion task and raises ParseError with a message a user can read.
"""

import csv
import io
import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import PurePath

from apps.knowledge.choices import FileKind
from apps.knowledge.exceptions import EmptyDocument, ParseError, UnsupportedFileType
from apps.knowledge.limits import limit

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
                json.loads(text)
            except ValueError as exc:
                raise UnsupportedFileType(f"{name} is not valid JSON.") from exc
        return Sniffed(kind=actual, declared=declared)
    if declared is not None and declared != actual:
        raise UnsupportedFileType(
            f"{name} does not contain what its name says ({declared.label}); it is {actual.label}."
        )
    return Sniffed(kind=actual, declared=declared)


class _Deadline:
    def __init__(self) -> None:
        self.seconds = float(limit("KNOWLEDGE_PARSE_TIMEOUT_SECONDS"))
        self.ends = time.monotonic() + self.seconds

    def check(self) -> None:
        if time.monotonic() > self.ends:
            raise ParseError(f"Parsing took longer than {self.seconds:g} seconds.")


def _pdf_text(data: bytes, deadline: _Deadline) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    max_pages = int(limit("KNOWLEDGE_MAX_PDF_PAGES"))
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


def _check_archive(data: bytes) -> None:
    """Refuse zip bombs before any XML is inflated."""
    max_total = int(limit("KNOWLEDGE_MAX_UNCOMPRESSED_BYTES"))
    max_ratio = float(limit("KNOWLEDGE_MAX_COMPRESSION_RATIO"))
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


def _docx_text(data: bytes, deadline: _Deadline) -> str:
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    _check_archive(data)
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
    if isinstance(value, dict):
        for key, item in value.items():
            _json_lines(item, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_lines(item, f"{path}[{index}]", out)
    else:
        out.append(f"{path or 'value'}: {value}")


def _json_text(text: str) -> str:
    try:
        value = json.loads(text)
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


def extract_text(*, kind: str, data: bytes) -> str:
    """The text of a document of `kind`. Raises ParseError (corrupt, too big, too slow,
    empty) with a message a user can read."""
    deadline = _Deadline()
    if kind == FileKind.PDF:
        text = _pdf_text(data, deadline)
    elif kind == FileKind.DOCX:
        text = _docx_text(data, deadline)
    else:
        decoded = _decode(data)
        if decoded is None:
            raise ParseError("The file is not text.")
        if kind == FileKind.HTML:
            text = _html_text(decoded)
        elif kind == FileKind.CSV:
            text = _csv_text(decoded, deadline)
        elif kind == FileKind.JSON:
            text = _json_text(decoded)
        else:
            text = decoded
    deadline.check()
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    max_chars = int(limit("KNOWLEDGE_MAX_DOCUMENT_CHARS"))
    if len(text) > max_chars:
        raise ParseError(f"The document has {len(text)} characters; the limit is {max_chars}.")
    if not text.strip():
        raise ParseError("No text could be extracted from the document.")
    return text
