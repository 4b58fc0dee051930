"""Instructions per request (callgrind): a figure that does not move with the machine's
load, for comparing two versions of the request path on a shared machine.

    python bench/request_instructions.py seed DIR [--chunks 2000] [--agents 50]
    valgrind --tool=callgrind --dump-before=os_getppid --callgrind-out-file=DIR/cg.%p \
        python bench/request_instructions.py run DIR [--requests 30]
    python bench/request_instructions.py report DIR

`seed` builds a fresh SQLite database in DIR (the same seed as bench/request_bench.py:
an API key, `--agents` agents, a knowledge base of full-text chunks) and writes DIR/seed.json.
`run` goes through Django's handler in this process (Django's test client: middleware,
authentication, views and rendering, as bench/request_bench.py's `--profile`; no ASGI
server), warms each kind up, then makes `--requests` requests of each kind (list of 50,
knowledge base detail, full-text search, and the plain views of list and detail), calling
`os.getppid()` between kinds: with `--dump-before=os_getppid`, callgrind writes one
profile part per kind. `report` prints the instructions per request of each part.
Embedded profile only (SQLite, local-memory cache): the PostgreSQL driver's own work is
outside the Python process anyway.
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = ["list", "plain_list", "detail", "plain_detail", "search", "plain_search"]


def _environment(folder: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.request_settings"
    os.environ["VAR_DIR"] = str(folder)
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.pop("REDIS_URL", None)


def seed(args: argparse.Namespace) -> None:
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    _environment(folder)
    import django

    django.setup()
    from django.core.management import call_command

    from bench.request_bench import _seed

    call_command("migrate", verbosity=0)
    seeded = _seed(args)
    seeded.pop("user")
    (folder / "seed.json").write_text(json.dumps(seeded))


def run(args: argparse.Namespace) -> None:
    folder = Path(args.dir)
    _environment(folder)
    import django

    django.setup()
    from django.test import Client

    from apps.core.startup import freeze_startup_objects

    seeded = json.loads((folder / "seed.json").read_text())
    kb, ws, queries = seeded["kb_id"], seeded["workspace_id"], seeded["queries"]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {seeded['api_key']}")
    plain = Client()

    calls: dict[str, Any] = {
        "list": lambda i: client.get("/api/v1/agents", {"limit": 50}),
        "plain_list": lambda i: plain.get("/bench/plain/agents", {"workspace": ws, "limit": 50}),
        "detail": lambda i: client.get(f"/api/v1/knowledge-bases/{kb}"),
        "plain_detail": lambda i: plain.get(f"/bench/plain/knowledge-bases/{kb}"),
        "search": lambda i: client.post(
            f"/api/v1/knowledge-bases/{kb}/search",
            {"query": queries[i % len(queries)], "top_k": 10, "mode": "fulltext"},
            content_type="application/json",
        ),
        "plain_search": lambda i: plain.get(
            f"/bench/plain/knowledge-bases/{kb}/search", {"q": queries[i % len(queries)]}
        ),
    }
    for call in calls.values():
        for i in range(10):
            assert call(i).status_code == 200
    freeze_startup_objects()
    for name in KINDS:
        os.getppid()  # callgrind dumps the part before this kind
        for i in range(args.requests):
            call = calls[name]
            call(i)
    os.getppid()
    (folder / "run.json").write_text(json.dumps({"kinds": KINDS, "requests": args.requests}))


def report(args: argparse.Namespace) -> None:
    folder = Path(args.dir)
    meta = json.loads((folder / "run.json").read_text())
    parts = sorted(
        (p for p in folder.glob("cg.*") if re.search(r"^cg\.\d+\.\d+$", p.name)),
        key=lambda p: int(p.name.rsplit(".", 1)[1]),
    )
    counts = []
    for part in parts:
        text = part.read_text(errors="replace")
        found = re.search(r"^summary:\s+(\d+)", text, re.M) or re.search(
            r"^totals:\s+(\d+)", text, re.M
        )
        counts.append(int(found.group(1)) if found else 0)
    # Part 1 is start-up and warm-up; parts 2.. are the kinds, in order.
    per_kind = dict(zip(meta["kinds"], counts[1:], strict=False))
    out = {k: round(v / meta["requests"] / 1e6, 3) for k, v in per_kind.items()}
    print(json.dumps({"minstr_per_request": out}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["seed", "run", "report"])
    parser.add_argument("dir")
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    {"seed": seed, "run": run, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
