"""Workflow engine overhead: a workflow of N no-op steps (templates, chained) run by the
engine vs the same templates rendered directly, in one process.

    python bench/workflow_bench.py [--steps 100] [--repeat 3]

Embedded profile by default (a fresh SQLite file); with DATABASE_URL set (PostgreSQL) it
uses a database named `bench_workflow` on that server, created and dropped here. The
engine side is what a worker does for a run: claim it, load it, and for every step write
its start and end (status, inputs, output) and two events to the durable log, then finish
the run. Prints one JSON object: both times (median of --repeat), the engine's own
overhead per step, and the ratio.
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _prepare_environment() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    folder = tempfile.mkdtemp(prefix="bench-workflow-")
    os.environ["VAR_DIR"] = folder
    os.environ["MEDIA_ROOT"] = f"{folder}/media"
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_workflow")
            conn.execute("CREATE DATABASE bench_workflow")
        parts = urlsplit(url)
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/bench_workflow"))
        return "postgresql"
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    return "sqlite"


def definition(steps: int) -> dict:
    chain = [{"id": "start", "type": "start", "inputs": {"seed": {"type": "string"}}}]
    previous = "start"
    for i in range(steps):
        source = "inputs.seed" if i == 0 else f"steps.{previous}.output.text"
        chain.append(
            {
                "id": f"s{i}",
                "type": "template",
                "after": [previous],
                "template": f"{{{{ {source} }}}}.",
            }
        )
        previous = f"s{i}"
    chain.append(
        {
            "id": "end",
            "type": "end",
            "after": [previous],
            "outputs": {"text": f"{{{{ steps.{previous}.output.text }}}}"},
        }
    )
    return {"steps": chain}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    vendor = _prepare_environment()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.CELERY_TASK_ALWAYS_EAGER = True  # the run executes here, as a worker would
    call_command("migrate", verbosity=0)

    from apps.users.actors import Actor
    from apps.users.choices import Role
    from apps.users.services import user_create
    from apps.workflows.definition import evaluate
    from apps.workflows.models import WorkflowRun
    from apps.workflows.services import run_start, workflow_create, workflow_publish

    user = user_create(email="bench@example.com", password="bench-password-123", name="B")
    workspace = user.memberships.get().workspace
    actor = Actor(user=user, workspace=workspace, role=Role.OWNER)
    flow = definition(args.steps)
    workflow = workflow_create(actor=actor, name="bench", definition=flow)
    workflow = workflow_publish(actor=actor, workflow=workflow)

    def direct() -> str:
        outputs: dict = {}
        for step in flow["steps"][1:-1]:
            context = {"inputs": {"seed": "x"}, "steps": outputs}
            outputs[step["id"]] = {"output": {"text": evaluate(step["template"], context)}}
        return outputs[f"s{args.steps - 1}"]["output"]["text"]

    def engine() -> str:
        run = run_start(actor=actor, workflow=workflow, inputs={"seed": "x"})
        run = WorkflowRun.objects.get(id=run.id)
        assert run.status == "succeeded", (run.status, run.error_message)
        return run.outputs["text"]

    assert direct() == engine() == "x" + "." * args.steps  # warm both, same answer
    direct_times, engine_times = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        direct()
        direct_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        engine()
        engine_times.append(time.perf_counter() - started)
    d, e = statistics.median(direct_times), statistics.median(engine_times)
    print(
        json.dumps(
            {
                "database": vendor,
                "steps": args.steps,
                "repeat": args.repeat,
                "direct_seconds": round(d, 4),
                "engine_seconds": round(e, 4),
                "engine_overhead_ms_per_step": round((e - d) / args.steps * 1000, 3),
                "ratio": round(e / d, 1) if d else None,
            }
        )
    )


if __name__ == "__main__":
    main()
