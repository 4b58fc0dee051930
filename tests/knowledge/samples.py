"""Real sample files, made by code so every byte is visible in the tests."""

import io
import json
import zipfile


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
