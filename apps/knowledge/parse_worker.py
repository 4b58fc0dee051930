"""A child process that extracts one document's text under operating-system limits.

`python -m apps.knowledge.parse_worker <kind>` reads the document's bytes on stdin and
writes one JSON object on stdout: {"text": ...} or {"error": "<readable message>"}.
`services.document_text_isolated` starts it with an address-space and CPU limit
(setrlimit) and a wall-clock timeout, so a PDF or DOCX crafted to exhaust memory or time
kills this child, never the worker. It imports only the parsers (no Django app
registry), so it starts in well under a second.
"""

import json
import sys

from apps.knowledge.exceptions import ParseError
from apps.knowledge.parsing import extract_text


def main() -> int:
    kind = sys.argv[1]
    data = sys.stdin.buffer.read()
    try:
        out = {"text": extract_text(kind=kind, data=data)}
    except ParseError as exc:
        out = {"error": str(exc)}
    except MemoryError:
        out = {"error": "The document needs more memory to read than the limit allows."}
    sys.stdout.write(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
