"""Serve the scripted model server for demos and benchmarks (no internet needed)."""

import contextlib
from typing import Any

from django.core.management.base import BaseCommand

from apps.providers.scripted import ScriptedLLM


class Command(BaseCommand):
    help = (
        "Start the scripted OpenAI/Anthropic-compatible model server. Point a provider's "
        "base URL at http://HOST:PORT/v1 (OpenAI-compatible) or http://HOST:PORT (Anthropic) "
        "and allow-list the host for the outbound guard."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8765)
        parser.add_argument("--token-delay", type=float, default=0.02, help="Seconds per chunk.")
        parser.add_argument("--text", default="", help="The default answer.")
        parser.add_argument("--dimensions", type=int, default=0, help="Embedding size.")

    def handle(self, *args: Any, **options: Any) -> None:
        server = ScriptedLLM(host=options["host"], port=options["port"])
        server.token_delay = options["token_delay"]
        if options["text"]:
            server.default_text = options["text"]
        if options["dimensions"]:
            server.embedding_dimensions = options["dimensions"]
        server.remember_defaults()
        self.stdout.write(f"Scripted model server on http://{options['host']}:{options['port']}/v1")
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
