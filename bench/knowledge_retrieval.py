"""Knowledge retrieval benchmark: the platform's search endpoint vs the raw SQL it issues.

    python bench/knowledge_retrieval.py [--sizes 10000,100000] [--queries 200]

Embedded profile by default (a fresh SQLite file in a temporary folder). With
DATABASE_URL set (PostgreSQL + pgvector) it creates and drops a database named
`bench_knowledge` on that server. Chunks are synthetic: random unit vectors (64
dimensions, the scripted embedder's size) and texts of random words, so both legs have
work to do. Query vectors are put in the query-embedding cache first, so the endpoint's
time is retrieval, not the embedding provider's round trip.

Prints one JSON object per size: p50/p95 in milliseconds of the endpoint (Django test
client: middleware, session authentication, rate limit, serializers, rendering) and of
the raw retrieval the platform runs for it, per mode, the p95 difference, and the
recall@10 of vector mode against exact search.

The raw side is what `apps/knowledge/search.py` runs for the leg, on the same connection,
without the request around it: PostgreSQL vector, the HNSW query of `vector_sql` with its
`SET LOCAL hnsw.ef_search` (`pg_vector_rows`, one message); full-text (both profiles),
the query of `fulltext_sql`. SQLite
vector: the platform keeps each knowledge base's decoded vectors in memory (checked
against the chunk-version row on every query), so its raw side is `vector_search` itself:
the version query and the numpy scan; `cold_scan` is the scan straight from the BLOBs
(`vector_sql` rows decoded and scored), what a query costs after a write to the knowledge
base. The hydration of the hits (one more query) is counted in the endpoint's overhead.
`request_floor` is an authenticated GET of the knowledge base: the request path alone.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DIMS = 64
VOCABULARY_SIZE = 5000


def _prepare_environment() -> str:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith("postgres"):
        from urllib.parse import urlsplit, urlunsplit

        import psycopg

        parts = urlsplit(url)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_knowledge")
            conn.execute("CREATE DATABASE bench_knowledge")
        os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path="/bench_knowledge"))
        return "postgresql"
    folder = tempfile.mkdtemp(prefix="bench-knowledge-")
    os.environ["VAR_DIR"] = folder
    os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    return "sqlite"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index] * 1000


def _unit(rng: random.Random) -> list[float]:
    vector = [rng.gauss(0, 1) for _ in range(DIMS)]
    norm = sum(v * v for v in vector) ** 0.5
    return [v / norm for v in vector]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ef-search", type=int, default=0, help="override the setting")
    args = parser.parse_args()
    vendor = _prepare_environment()

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    if args.ef_search:
        settings.KNOWLEDGE_HNSW_EF_SEARCH = args.ef_search
    settings.RATE_LIMITS = dict.fromkeys(settings.RATE_LIMITS, "1000000/min")
    call_command("migrate", verbosity=0)

    from apps.knowledge.models import Chunk, Document, KnowledgeBase
    from apps.knowledge.search import (
        Filters,
        _indexed_dims,
        ensure_vector_index,
        fulltext_sql,
        pg_vector_rows,
        sqlite_scan,
        vector_search,
        vector_sql,
    )
    from apps.knowledge.selectors import _QUERY_VECTORS
    from apps.providers.models import DefaultModel, Provider, ProviderModel
    from apps.users.services import user_create

    rng = random.Random(7)
    user = user_create(email="bench@example.com", password="bench-password-123", name="Bench")
    workspace = user.memberships.get().workspace
    provider = Provider.objects.create(
        workspace=workspace, name="bench", kind="openai", base_url="http://127.0.0.1:9/v1"
    )
    model = ProviderModel.objects.create(
        provider=provider, name="bench-embed", kind="embedding", dimensions=DIMS
    )
    DefaultModel.objects.create(workspace=workspace, kind="embedding", model=model)
    vocabulary = [f"w{i}" for i in range(VOCABULARY_SIZE)]
    client = Client()
    client.force_login(user)
    results = []
    for size in [int(s) for s in args.sizes.split(",")]:
        kb = KnowledgeBase.objects.create(
            workspace=workspace, name=f"bench-{size}", top_k=10, score_threshold=0.0
        )
        document = Document.objects.create(
            knowledge_base=kb,
            name="synthetic.txt",
            source="text",
            kind="text",
            checksum=uuid.uuid4().hex,
            status="indexed",
        )
        started = time.monotonic()
        if vendor == "postgresql":
            # A bulk load builds the HNSW index once at the end, as an operator would.
            with connection.cursor() as cursor:
                cursor.execute(f"DROP INDEX IF EXISTS knowledge_chunk_hnsw_{DIMS}")
            _indexed_dims.discard(DIMS)
        batch: list[Chunk] = []
        for position in range(size):
            words = " ".join(rng.choice(vocabulary) for _ in range(30))
            batch.append(
                Chunk(
                    knowledge_base=kb,
                    document=document,
                    position=position,
                    content=words,
                    token_count=30,
                    fts_config="simple",
                    embedding=_unit(rng),
                    embedding_dims=DIMS,
                    embedding_model_key=model.id.hex,
                )
            )
            if len(batch) == 2000:
                Chunk.objects.bulk_create(batch)
                batch = []
        if batch:
            Chunk.objects.bulk_create(batch)
        ensure_vector_index(DIMS)
        if vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE knowledge_chunk")
        load_seconds = time.monotonic() - started
        kb.language = "simple"
        kb.save()

        queries = []
        for _ in range(args.queries):
            text = " ".join(rng.choice(vocabulary) for _ in range(3))
            vector = _unit(rng)
            _QUERY_VECTORS.put((model.id.hex, text), vector)
            queries.append((text, vector))

        figures: dict[str, object] = {
            "profile": vendor,
            "chunks": size,
            "load_s": round(load_seconds, 1),
        }

        def search_leg(vector: list[float], kb_id: uuid.UUID = kb.id) -> None:
            vector_search(
                kb_ids=[kb_id], model_key=model.id.hex, query=vector, top_k=10, filters=Filters()
            )

        if vendor == "sqlite":
            cold = []
            for _, vector in queries[:20]:
                sql, params = vector_sql(
                    kb_ids=[kb.id],
                    model_key=model.id.hex,
                    query=vector,
                    top_k=10,
                    filters=Filters(),
                )
                t0 = time.perf_counter()
                sqlite_scan(sql, params, query=vector, top_k=10)
                cold.append(time.perf_counter() - t0)
            figures["cold_scan"] = {
                "p50_ms": round(_percentile(cold, 0.5), 2),
                "p95_ms": round(_percentile(cold, 0.95), 2),
            }
            search_leg(queries[0][1])  # load the vectors into memory once
        for mode in ("vector", "fulltext"):
            platform, raw = [], []
            for text, vector in queries:
                if vendor == "sqlite" and mode == "vector":
                    t0 = time.perf_counter()
                    search_leg(vector)
                    raw.append(time.perf_counter() - t0)
                elif mode == "vector":
                    sql, params = vector_sql(
                        kb_ids=[kb.id],
                        model_key=model.id.hex,
                        query=vector,
                        top_k=10,
                        filters=Filters(),
                    )
                else:
                    built = fulltext_sql(
                        kb_ids=[kb.id], config="simple", query=text, top_k=10, filters=Filters()
                    )
                    assert built is not None
                    sql, params = built
                if vendor == "postgresql" and mode == "vector":
                    t0 = time.perf_counter()
                    pg_vector_rows(sql, params, exact=False)
                    raw.append(time.perf_counter() - t0)
                elif mode == "fulltext":
                    t0 = time.perf_counter()
                    with connection.cursor() as cursor:
                        cursor.execute(sql, params)
                        cursor.fetchall()
                    raw.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                response = client.post(
                    f"/api/v1/knowledge-bases/{kb.id}/search",
                    {"query": text, "top_k": 10, "mode": mode},
                    content_type="application/json",
                )
                platform.append(time.perf_counter() - t0)
                assert response.status_code == 200, response.content[:300]
            figures[mode] = {
                "platform_p50_ms": round(_percentile(platform, 0.5), 2),
                "platform_p95_ms": round(_percentile(platform, 0.95), 2),
                "raw_p50_ms": round(_percentile(raw, 0.5), 2),
                "raw_p95_ms": round(_percentile(raw, 0.95), 2),
                "p95_ratio": round(_percentile(platform, 0.95) / _percentile(raw, 0.95), 2),
                "p95_overhead_ms": round(_percentile(platform, 0.95) - _percentile(raw, 0.95), 2),
            }
        # The request path alone: an authenticated GET of the knowledge base (middleware,
        # session, rate limit, one lookup, rendering), for scale.
        floor = []
        for _ in queries:
            t0 = time.perf_counter()
            response = client.get(f"/api/v1/knowledge-bases/{kb.id}")
            floor.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.content[:300]
        figures["request_floor"] = {
            "p50_ms": round(_percentile(floor, 0.5), 2),
            "p95_ms": round(_percentile(floor, 0.95), 2),
        }
        recalls = []
        for _, vector in queries[:100]:
            approx = vector_search(
                kb_ids=[kb.id], model_key=model.id.hex, query=vector, top_k=10, filters=Filters()
            )
            if vendor == "sqlite":
                # Exact both ways: this checks the in-memory vectors against the BLOBs.
                sql, params = vector_sql(
                    kb_ids=[kb.id],
                    model_key=model.id.hex,
                    query=vector,
                    top_k=10,
                    filters=Filters(),
                )
                exact = sqlite_scan(sql, params, query=vector, top_k=10)
            else:
                exact = vector_search(
                    kb_ids=[kb.id],
                    model_key=model.id.hex,
                    query=vector,
                    top_k=10,
                    filters=Filters(),
                    exact=True,
                )
            recalls.append(len({c for c, _ in approx} & {c for c, _ in exact}) / 10)
        figures["recall_at_10"] = round(statistics.mean(recalls), 4)
        results.append(figures)
        print(json.dumps(figures), flush=True)
        Chunk.objects.filter(knowledge_base=kb).delete()
    if vendor == "postgresql":
        connection.close()


if __name__ == "__main__":
    main()
