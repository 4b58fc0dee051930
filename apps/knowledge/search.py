"""The retrieval backends: the raw SQL each profile runs, behind one interface.

PostgreSQL: pgvector cosine distance through a partial HNSW expression index per
dimension (`embedding::vector(d)`), falling back to an exact scan when filters leave the
approximate scan short; full-text with tsvector/GIN (`fts_config` stemmer per row).
SQLite: exact cosine over float32 BLOBs (vectors are stored L2-normalised, so cosine is a
dot product, computed with numpy); full-text with FTS5 (BM25).

Every function returns `(chunk_id, score)` pairs, best first; scores are in [0, 1].
"""

import json
import math
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection, transaction

from apps.knowledge.fields import vector_literal
from apps.knowledge.limits import limit

# The SQL below is assembled from constant table names, integers and "%s" placeholders;
# every value a user sends is a query parameter (hence the S608 exemptions).

CHUNK_TABLE = "knowledge_chunk"
DOCUMENT_TABLE = "knowledge_document"
FTS_TABLE = "knowledge_chunk_fts"
_WORD_RE = re.compile(r"\w+", re.UNICODE)

Scored = list[tuple[uuid.UUID, float]]


@dataclass(frozen=True)
class Filters:
    """Restrictions every leg applies: documents and document-metadata equality."""

    document_ids: tuple[uuid.UUID, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


def normalize(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0:
        return [float(v) for v in vector]
    return [float(v) / norm for v in vector]


def is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _hex(ids: Sequence[uuid.UUID]) -> list[str]:
    return [i.hex for i in ids]


def _where(kb_ids: Sequence[uuid.UUID], filters: Filters, params: list[Any]) -> tuple[str, str]:
    """(extra JOIN, WHERE clauses) shared by both legs, appending their parameters."""
    pg = is_postgres()
    clauses = ["c.enabled"]
    if pg:
        clauses.append("c.knowledge_base_id = ANY(%s)")
        params.append(list(kb_ids))
    else:
        clauses.append(f"c.knowledge_base_id IN ({','.join(['%s'] * len(kb_ids))})")
        params.extend(_hex(kb_ids))
    if filters.document_ids:
        if pg:
            clauses.append("c.document_id = ANY(%s)")
            params.append(list(filters.document_ids))
        else:
            marks = ",".join(["%s"] * len(filters.document_ids))
            clauses.append(f"c.document_id IN ({marks})")
            params.extend(_hex(filters.document_ids))
    join = ""
    if filters.metadata:
        join = f" JOIN {DOCUMENT_TABLE} d ON d.id = c.document_id"
        for key, value in sorted(filters.metadata.items()):
            if pg:
                clauses.append("d.metadata @> %s::jsonb")
                params.append(json.dumps({key: value}))
            else:
                clauses.append("json_extract(d.metadata, %s) = %s")
                params.append('$."' + key.replace('"', "") + '"')
                params.append(int(value) if isinstance(value, bool) else value)
    return join, " AND ".join(clauses)


# --- vector leg -----------------------------------------------------------------------


def vector_sql(
    *,
    kb_ids: Sequence[uuid.UUID],
    model_key: str,
    query: Sequence[float],
    top_k: int,
    filters: Filters,
    exact: bool = False,
) -> tuple[str, list[Any]]:
    """The SQL (and parameters) of the vector leg, exposed for the benchmarks."""
    params: list[Any] = []
    dims = len(query)
    join, where = _where(kb_ids, filters, params)
    if is_postgres():
        literal = vector_literal(list(query))
        # The cast to vector(d) matches the partial HNSW index of that dimension; the
        # exact variant compares the uncast column, which no index serves.
        column = "c.embedding" if exact else f"(c.embedding::vector({int(dims)}))"
        target = "%s::vector" if exact else f"%s::vector({int(dims)})"
        sql = (
            f"SELECT c.id, {column} <=> {target} AS distance FROM {CHUNK_TABLE} c{join} "  # noqa: S608
            f"WHERE {where} AND c.embedding_dims = {int(dims)} AND c.embedding_model_key = %s "
            f"ORDER BY distance LIMIT %s"
        )
        return sql, [literal, *params, model_key, top_k]
    sql = (
        f"SELECT c.id, c.embedding FROM {CHUNK_TABLE} c{join} "  # noqa: S608
        f"WHERE {where} AND c.embedding_dims = %s AND c.embedding_model_key = %s"
    )
    return sql, [*params, dims, model_key]


def _pg_vector(sql: str, params: list[Any], *, exact: bool) -> Scored:
    with transaction.atomic(), connection.cursor() as cursor:
        if not exact:
            cursor.execute(f"SET LOCAL hnsw.ef_search = {int(limit('KNOWLEDGE_HNSW_EF_SEARCH'))}")
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [(_uuid(row[0]), max(0.0, min(1.0, 1.0 - float(row[1])))) for row in rows]


def _uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def vector_search(
    *,
    kb_ids: Sequence[uuid.UUID],
    model_key: str,
    query: Sequence[float],
    top_k: int,
    filters: Filters,
    exact: bool = False,
) -> Scored:
    """The `top_k` chunks closest to `query` (cosine similarity, best first)."""
    if not kb_ids:
        return []
    query = normalize(query)
    sql, params = vector_sql(
        kb_ids=kb_ids,
        model_key=model_key,
        query=query,
        top_k=top_k,
        filters=filters,
        exact=exact,
    )
    if is_postgres():
        hits = _pg_vector(sql, params, exact=exact)
        if len(hits) < top_k and not exact:
            # HNSW filters after its candidate list: when filters leave it short, the
            # exact scan finds what the approximate one dropped.
            sql, params = vector_sql(
                kb_ids=kb_ids,
                model_key=model_key,
                query=query,
                top_k=top_k,
                filters=filters,
                exact=True,
            )
            hits = _pg_vector(sql, params, exact=True)
        return hits
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    dims = len(query)
    matrix = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype="<f4").reshape(
        len(rows), dims
    )
    scores = matrix @ np.asarray(query, dtype=np.float32)
    count = min(top_k, len(rows))
    best = np.argpartition(-scores, count - 1)[:count]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(_uuid(rows[i][0]), max(0.0, min(1.0, float(scores[i])))) for i in best]


# --- full-text leg --------------------------------------------------------------------


def query_words(text: str) -> list[str]:
    return [w for w in _WORD_RE.findall(text.lower()) if w][:64]


def fulltext_sql(
    *,
    kb_ids: Sequence[uuid.UUID],
    config: str,
    query: str,
    top_k: int,
    filters: Filters,
) -> tuple[str, list[Any]] | None:
    """The SQL of the full-text leg (any word of the query may match), or None when
    the query has no searchable word."""
    words = query_words(query)
    if not words:
        return None
    params: list[Any] = []
    join, where = _where(kb_ids, filters, params)
    if is_postgres():
        # plainto_tsquery stems and drops stop words; OR-ing its terms ranks passages
        # by how many of the question's words they hold instead of demanding all.
        tsquery = "replace(plainto_tsquery(%s::regconfig, %s)::text, ' & ', ' | ')::tsquery"
        sql = (
            f"SELECT c.id, ts_rank_cd(c.search_vector, q.query, 32) AS rank "  # noqa: S608
            f"FROM {CHUNK_TABLE} c{join}, (SELECT {tsquery} AS query) q "
            f"WHERE {where} AND c.fts_config = %s AND c.search_vector @@ q.query "
            f"ORDER BY rank DESC, c.id LIMIT %s"
        )
        return sql, [config, " ".join(words), *params, config, top_k]
    match = " OR ".join('"' + w.replace('"', "") + '"' for w in words)
    sql = (
        f"SELECT c.id, bm25({FTS_TABLE}) AS rank FROM {FTS_TABLE} "  # noqa: S608
        f"JOIN {CHUNK_TABLE} c ON c.rowid = {FTS_TABLE}.rowid{join} "
        f"WHERE {FTS_TABLE} MATCH %s AND {where} ORDER BY rank, c.id LIMIT %s"
    )
    return sql, [match, *params, top_k]


def fulltext_search(
    *,
    kb_ids: Sequence[uuid.UUID],
    config: str,
    query: str,
    top_k: int,
    filters: Filters,
) -> Scored:
    """The `top_k` chunks matching the words of `query`, best first."""
    if not kb_ids:
        return []
    built = fulltext_sql(kb_ids=kb_ids, config=config, query=query, top_k=top_k, filters=filters)
    if built is None:
        return []
    with connection.cursor() as cursor:
        cursor.execute(*built)
        rows = cursor.fetchall()
    hits: Scored = []
    for chunk_id, rank in rows:
        if is_postgres():
            score = float(rank)  # normalisation 32: rank / (rank + 1)
        else:
            raw = max(0.0, -float(rank))  # bm25() is negative, lower is better
            score = raw / (1.0 + raw)
        hits.append((_uuid(chunk_id), score))
    return hits


def reciprocal_rank_fusion(rankings: Sequence[Scored], *, k: int) -> Scored:
    """Fuse ranked lists: score = sum of 1 / (k + rank), scaled so that a chunk ranked
    first by every list scores 1."""
    if not rankings:
        return []
    fused: dict[uuid.UUID, float] = {}
    for ranking in rankings:
        for rank, (chunk_id, _) in enumerate(ranking, start=1):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + 1.0 / (k + rank)
    best = len(rankings) / (k + 1)
    return sorted(
        ((chunk_id, score / best) for chunk_id, score in fused.items()),
        key=lambda item: (-item[1], str(item[0])),
    )


_indexed_dims: set[int] = set()


def ensure_vector_index(dims: int) -> None:
    """Create the partial HNSW index for embeddings of `dims` dimensions (PostgreSQL;
    idempotent). pgvector indexes at most 2000 dimensions: larger ones are searched
    exactly."""
    if not is_postgres() or not 0 < dims <= 2000 or dims in _indexed_dims:
        return
    name = f"knowledge_chunk_hnsw_{int(dims)}"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_class WHERE relname = %s", [name])
        if cursor.fetchone() is None:
            # Pending deferred foreign-key checks forbid CREATE INDEX in this transaction:
            # run them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON {CHUNK_TABLE} "
                f"USING hnsw ((embedding::vector({int(dims)})) vector_cosine_ops) "
                f"WITH (m = 16, ef_construction = 128) WHERE embedding_dims = {int(dims)}"
            )
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    if not connection.in_atomic_block:
        _indexed_dims.add(dims)
