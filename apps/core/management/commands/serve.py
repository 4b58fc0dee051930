"""Run the whole embedded platform with one command: the ASGI server (uvicorn, with
WEB_CONCURRENCY processes), a Celery worker and Celery beat (docs/architecture.md says
why uvicorn). Ctrl-C (or SIGTERM) stops all three; if one dies, the others are
stopped too."""

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = (
        "Serve the platform: uvicorn + Celery worker + Celery beat, started and stopped together."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", default=os.environ.get("PORT", "8000"))
        parser.add_argument("--concurrency", default=os.environ.get("WORKER_CONCURRENCY", "2"))
        parser.add_argument(
            "--web-concurrency",
            default=os.environ.get("WEB_CONCURRENCY", "1"),
            help="ASGI server processes (WEB_CONCURRENCY; more than 1 needs the production "
            "profile's Redis for live events between them, or takes the log's ~1 s path).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for folder in ("celery-broker", "celery-control"):
            (settings.VAR_DIR / folder).mkdir(parents=True, exist_ok=True)
        python = sys.executable
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "config.settings.dev"
            ),
        }
        commands = {
            "web": [
                python,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                options["host"],
                "--port",
                str(options["port"]),
                "--workers",
                str(options["web_concurrency"]),
                "--lifespan",
                "on",
                "--ws",
                "websockets-sansio",
                "--no-access-log",
            ],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-l",
                "info",
                "--concurrency",
                str(options["concurrency"]),
                "--without-gossip",
                "--without-mingle",
            ],
            "beat": [
                python,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "info",
                "--schedule",
                str(settings.VAR_DIR / "celerybeat-schedule"),
            ],
        }
        procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}  # noqa: S603
        self.stdout.write(
            self.style.SUCCESS(
                f"Serving at http://{options['host']}:{options['port']}/ "
                "(admin at /admin/, API docs at /api/docs/). Ctrl-C stops everything."
            )
        )
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        exit_code = 0
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    self.stderr.write(f"{name} exited with {proc.returncode}; stopping.")
                    exit_code = proc.returncode or 1
                    stopping = True
                    break
            time.sleep(0.5)
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
        if exit_code:
            raise SystemExit(exit_code)
