"""Real sample files, made by code so every byte is visible in the tests."""

import io
import json
import zipfile
import zlib


def make_pdf(pages: list[str]) -> bytes:
    """A valid PDF with one page of text (Helvetica) per item of `pages`."""
    objects: list[bytes] = []
    count = len(pages)
    page_ids = [3 + 2 * i for i in range(count)]
    font_id = 3 + 2 * count
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode())
    for index, text in enumerate(pages):
        content_id = page_ids[index] + 1
        objects.append(
            (
                f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font_id} 0 R >> >> /Contents {content_id} 0 R >>"
            ).encode()
        )
        lines = []
        for number, line in enumerate(text.split("\n")):
            escaped = line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
            lines.append(f"BT /F1 12 Tf 72 {720 - 16 * number} Td ({escaped}) Tj ET")
        stream = "\n".join(lines).encode("latin-1")
        objects.append(
            b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream"
        )
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = io.BytesIO()
    out.write(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    out.write(
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return out.getvalue()


def make_docx(*, title: str, sections: list[tuple[str, str]]) -> bytes:
    import docx

    document = docx.Document()
    document.add_heading(title, level=1)
    for heading, body in sections:
        document.add_heading(heading, level=2)
        document.add_paragraph(body)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_zip_bomb_docx(*, expanded_bytes: int) -> bytes:
    """A DOCX-shaped archive whose document.xml inflates `expanded_bytes` of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"0" * expanded_bytes)
    return out.getvalue()


HTML = b"""<!DOCTYPE html>
<html><head><title>Ignored title</title><style>body { color: red }</style></head>
<body><h1>Solar panels</h1><p>Photovoltaic cells turn sunlight into electricity.</p>
<script>var secret = "never indexed";</script>
<h2>Maintenance</h2><p>Clean the panels twice a year.</p></body></html>"""

MARKDOWN = b"""# Espresso guide

Grind the beans fine and tamp evenly.

## Milk

Steam the milk to sixty degrees.
"""

CSV = b"city,country,population\nLyon,France,522250\nPorto,Portugal,231800\n"

JSON = json.dumps(
    [
        {"sku": "A-100", "name": "Trail shoe", "price": 120},
        {"sku": "B-200", "name": "Rain jacket", "price": 180},
    ]
).encode()

TEXT = b"The lighthouse keeper logs the weather every morning.\n\nStorms are rare in July.\n"

EXECUTABLE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 64
ELF = b"\x7fELF\x02\x01\x01" + b"\x00" * 64


# Hostile files: each generator builds its bytes, so what is hostile about it is visible.

_WORD_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
GOOD_DOCUMENT_XML = (
    f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document {_WORD_NS}>'
    "<w:body>"
    + "".join(f"<w:p><w:r><w:t>Paragraph {i} of the manual.</w:t></w:r></w:p>" for i in range(40))
    + "</w:body></w:document>"
).encode()


def docx_with_document_xml(xml: bytes, *, compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A real DOCX (from python-docx) whose word/document.xml is replaced by `xml`."""
    base = make_docx(title="Manual", sections=[("Brakes", "Check the pads.")])
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(base)) as source,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        for info in source.infolist():
            if info.filename == "word/document.xml":
                target.writestr(info.filename, xml, compress_type=compression)
            else:
                target.writestr(info, source.read(info))
    return out.getvalue()


def _patch_entry(data: bytes, name: str, **fields: int) -> bytes:
    """Rewrite `crc`, `compress_size` or `file_size` of entry `name` in both its local
    header and its central directory record (what a hand-crafted archive would hold)."""
    import struct

    raw = bytearray(data)
    encoded = name.encode()
    local_offsets = {"crc": 14, "compress_size": 18, "file_size": 22}
    central_offsets = {"crc": 16, "compress_size": 20, "file_size": 24}
    for signature, offsets, name_at in (
        (b"PK\x03\x04", local_offsets, 30),
        (b"PK\x01\x02", central_offsets, 46),
    ):
        at = raw.find(signature)
        while at != -1:
            if raw[at + name_at : at + name_at + len(encoded)] == encoded:
                for field, value in fields.items():
                    struct.pack_into("<I", raw, at + offsets[field], value)
            at = raw.find(signature, at + 4)
    return bytes(raw)


def make_not_well_formed_docx() -> bytes:
    return docx_with_document_xml(GOOD_DOCUMENT_XML.replace(b"</w:body>", b"</w:bdy>"))


def make_corrupt_deflate_docx() -> bytes:
    """document.xml's deflate stream overwritten in its middle with junk."""
    data = bytearray(docx_with_document_xml(GOOD_DOCUMENT_XML))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as archive:
        info = archive.getinfo("word/document.xml")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    middle = start + info.compress_size // 2
    data[middle : middle + 16] = b"\xff" * 16
    return bytes(data)


def make_truncated_entry_docx() -> bytes:
    """document.xml's headers declare a short size and the CRC of that prefix, so a
    reader gets cut-off XML that passes the integrity check."""
    prefix = GOOD_DOCUMENT_XML[: len(GOOD_DOCUMENT_XML) // 3]
    data = docx_with_document_xml(GOOD_DOCUMENT_XML, compression=zipfile.ZIP_STORED)
    return _patch_entry(data, "word/document.xml", crc=zlib.crc32(prefix), file_size=len(prefix))


def make_billion_laughs_docx(levels: int = 9) -> bytes:
    """document.xml declaring entities that each expand the previous one ten times."""
    entities = ['<!ENTITY lol0 "lol">'] + [
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, levels + 1)
    ]
    xml = (
        f'<?xml version="1.0"?>\n<!DOCTYPE w:document [{"".join(entities)}]>'
        f"<w:document {_WORD_NS}><w:body><w:p><w:r><w:t>&lol{levels};</w:t></w:r></w:p>"
        "</w:body></w:document>"
    )
    return docx_with_document_xml(xml.encode())


def nested_json(depth: int) -> bytes:
    return ("[" * depth + "1" + "]" * depth).encode()


def nested_html(depth: int) -> bytes:
    return (
        "<html><body>" + "<div>" * depth + "deep" + "</div>" * depth + "</body></html>"
    ).encode()
