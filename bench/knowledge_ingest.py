"""Knowledge ingestion benchmark: documents through the whole pipeline (parse, chunk,
embed, index) vs embedding alone, on the same chunks, in one run.

    python bench/knowledge_ingest.py [--documents 40] [--paragraphs 60]
        [--provider-latency-ms N] [--without-vector-index]

Embedded profile by default (a fresh SQLite file); with DATABASE_URL set (PostgreSQL) it
uses a database named `bench_knowledge_ingest` on that server, created and dropped here.
Embeddings come over HTTP from the scripted OpenAI-compatible server
(apps/providers/scripted.py) started in this process, so both sides pay the same
provider cost. Prints one JSON object: chunks per second of each, and their ratio.

`--without-vector-index` (PostgreSQL, diagnostic): the pipeline runs without the HNSW
index, to show what its maintenance costs; it is not how the platform runs.
"""

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _prepare_environment() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    folder = tempfile.mkdtemp(prefix="bench-ingest-")
    os.environ["VAR_DIR"] = folder
    os.environ["MEDIA_ROOT"] = f"{folder}/media"
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_knowledge_ingest")
            conn.execute("CREATE DATABASE bench_knowledge_ingest")
        parts = urlsplit(url)
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/bench_knowledge_ingest"))
        return "postgresql"
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    return "sqlite"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--paragraphs", type=int, default=60)
    parser.add_argument(
        "--provider-latency-ms",
        type=int,
        default=0,
        help="make each embeddings request of the scripted server take this long",
    )
    parser.add_argument(
        "--without-vector-index",
        action="store_true",
        help="diagnostic: no HNSW index during the pipeline (PostgreSQL)",
    )
    args = parser.parse_args()
    vendor = _prepare_environment()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    call_command("migrate", verbosity=0)

    from apps.knowledge import services
    from apps.knowledge.chunking import split_text
    from apps.knowledge.limits import limit
    from apps.knowledge.models import Chunk, Document
    from apps.providers.models import DefaultModel, Provider, ProviderKey, ProviderModel
    from apps.providers.scripted import DEFAULT_DIMENSIONS, Reply, ScriptedLLM
    from apps.providers.services import embed_texts
    from apps.providers.types import UsageContext
    from apps.users.actors import Actor
    from apps.users.choices import Role
    from apps.users.services import user_create

    server = ScriptedLLM().start()
    try:
        user = user_create(email="bench@example.com", password="bench-password-123", name="B")
        workspace = user.memberships.get().workspace
        provider = Provider.objects.create(
            workspace=workspace, name="scripted", kind="openai", base_url=server.base_url
        )
        ProviderKey.objects.create(provider=provider, secret="sk-bench-0001", last4="0001")
        model = ProviderModel.objects.create(
            provider=provider,
            name="scripted-embed",
            kind="embedding",
            dimensions=DEFAULT_DIMENSIONS,
        )
        DefaultModel.objects.create(workspace=workspace, kind="embedding", model=model)
        actor = Actor(user=user, workspace=workspace, role=Role.OWNER)
        kb = services.knowledge_base_create(
            actor=actor, name="bench", chunk_size=128, chunk_overlap=16
        )

        rng = random.Random(3)
        words = [f"term{i}" for i in range(3000)]
        texts = []
        for d in range(args.documents):
            paragraphs = [
                " ".join(rng.choice(words) for _ in range(rng.randint(20, 80))) + "."
                for _ in range(args.paragraphs)
            ]
            texts.append(f"# Document {d}\n\n" + "\n\n".join(paragraphs))
        chunk_texts = [
            [c.content for c in split_text(text=t, size=128, overlap=16, by_headings=True)]
            for t in texts
        ]
        total_chunks = sum(len(c) for c in chunk_texts)
        batch_size = int(limit("KNOWLEDGE_EMBED_BATCH_SIZE"))
        usage = UsageContext(workspace_id=workspace.id)

        calls = sum((len(c) + batch_size - 1) // batch_size for c in chunk_texts)
        delay = args.provider_latency_ms / 1000

        def script_latency() -> None:
            if delay:
                server.push_embeddings(*[Reply(first_byte_delay=delay)] * calls)

        # (1) Embedding alone: the same chunks, in the same batches, per document.
        script_latency()
        started = time.perf_counter()
        for chunks in chunk_texts:
            for i in range(0, len(chunks), batch_size):
                embed_texts(
                    workspace_id=workspace.id,
                    model_id=None,
                    texts=chunks[i : i + batch_size],
                    usage=usage,
                )
        embed_only = time.perf_counter() - started

        # (2) The pipeline: store the files, then parse, chunk, embed and index each.
        from django.core.files.base import ContentFile

        documents = []
        for i, text in enumerate(texts):
            document = Document(
                knowledge_base=kb,
                name=f"doc{i}.md",
                source="upload",
                kind="markdown",
                size=len(text),
                checksum=f"{i:064d}",
            )
            document.file.save(document.name, ContentFile(text.encode()), save=False)
            document.save()
            documents.append(document)
        if args.without_vector_index:
            services.ensure_vector_index = lambda dims: None  # type: ignore[assignment]
        if vendor == "sqlite":
            # As after the first search: the chunk-version triggers fire on every insert.
            from apps.knowledge.search import ensure_version_triggers

            ensure_version_triggers()
        script_latency()
        started = time.perf_counter()
        for document in documents:
            services.document_ingest(document_id=document.id, generation=document.generation)
        pipeline = time.perf_counter() - started
        statuses = set(Document.objects.values_list("status", flat=True))
        assert statuses == {"indexed"}, statuses
        stored = Chunk.objects.count()
        assert stored == total_chunks, (stored, total_chunks)
        figures = {
            "profile": vendor,
            "documents": args.documents,
            "provider_latency_ms": args.provider_latency_ms,
            "chunks": total_chunks,
            "embedding_only_chunks_per_s": round(total_chunks / embed_only, 1),
            "pipeline_chunks_per_s": round(total_chunks / pipeline, 1),
            "ratio": round(embed_only / pipeline, 3),
        }
        if vendor == "postgresql":
            figures["vector_index"] = not args.without_vector_index
        print(json.dumps(figures), flush=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
