"""Run the whole embedded platform with one command: the ASGI server (uvicorn, with
WEB_CONCURRENCY processes), a Celery worker and Celery beat (docs/architecture.md says
why uvicorn). Ctrl-C (or SIGTERM) stops all three; if one dies, the others are
stopped too."""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from apps.users.services import AdminAccount, ensure_admin


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
                # Open streams end on shutdown after this many seconds (clients resume
                # from their last event), instead of holding the process forever.
                "--timeout-graceful-shutdown",
                "10",
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
        admin = ensure_admin()
        procs = {name: subprocess.Popen(cmd, env=env) for name, cmd in commands.items()}  # noqa: S603
        self._wait_for_port(options["host"], int(options["port"]), procs["web"])
        self._banner(options["host"], str(options["port"]), admin)
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

    @staticmethod
    def _wait_for_port(host: str, port: int, web: subprocess.Popen[bytes]) -> None:
        """Until the web server accepts connections (so the banner comes after its
        start-up logs), at most 30 s."""
        deadline = time.monotonic() + 30
        probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
        while time.monotonic() < deadline and web.poll() is None:
            try:
                with socket.create_connection((probe, port), timeout=0.5):
                    break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.5)  # the worker's and beat's start-up banners print meanwhile

    def _banner(self, host: str, port: str, admin: AdminAccount) -> None:
        """The console URL and the administrator's credentials, printed last."""
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host  # noqa: S104
        url = f"http://{shown}:{port}/"
        lines = [
            "",
            "=" * 64,
            f"  Agent Platform is running: open {url}",
            f"  Operator admin: {url}admin/    API docs: {url}api/docs/",
            "",
            f"  Administrator: {admin.email}",
        ]
        if admin.password:
            lines.append(f"  Password:      {admin.password}   (shown once: keep it)")
        elif admin.created:
            lines.append("  Password:      the one in ADMIN_PASSWORD")
        else:
            lines.append("  Password:      unchanged (forgot it? `make reset-admin`)")
        if settings.DEBUG:
            lines.append("  DEBUG is on: never expose this server beyond your machine.")
        lines += ["  Ctrl-C stops everything.", "=" * 64, ""]
        self.stdout.write(self.style.SUCCESS("\n".join(lines)))
