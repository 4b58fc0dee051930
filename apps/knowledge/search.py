"""The retrieval backends: the raw SQL each profile runs, behind one interface.

PostgreSQL: pgvector cosine distance through a partial HNSW expression index per
dimension (`embedding::vector(d)`), falling back to an exact scan when filters leave the
approximate scan short; full-text with tsvector/GIN (`fts_config` stemmer per row).
SQLite: exact cosine over float32 BLOBs (vectors are stored L2-normalised, so cosine is a
dot product, computed with numpy); full-text with FTS5 (BM25). Each process keeps the
decoded vectors of the knowledge bases it searches (`VectorMatrices`), checked against a
per-knowledge-base version that triggers on the chunk table change on every write.

Every function returns `(chunk_id, score)` pairs, best first; scores are in [0, 1].
"""

import json
import math
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction

from apps.core.tools import Citation
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
        f"SELECT c.id, c.embedding, c.document_id FROM {CHUNK_TABLE} c{join} "  # noqa: S608
        f"WHERE {where} AND c.embedding_dims = %s AND c.embedding_model_key = %s"
    )
    return sql, [*params, dims, model_key]


def pg_vector_rows(sql: str, params: list[Any], *, exact: bool) -> list[Any]:
    """Run `vector_sql` on PostgreSQL: the HNSW scan under `hnsw.ef_search =
    KNOWLEDGE_HNSW_EF_SEARCH`, set for this statement's transaction only. With Django's
    default client-side binding, `SET LOCAL` and the query go in one message (one round
    trip, one implicit transaction); with server-side binding, in an explicit one."""
    if exact:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    setting = f"SET LOCAL hnsw.ef_search = {int(limit('KNOWLEDGE_HNSW_EF_SEARCH'))}"
    if connection.settings_dict.get("OPTIONS", {}).get("server_side_binding"):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(setting)
            cursor.execute(sql, params)
            return cursor.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(f"{setting}; {sql}", params)
        cursor.nextset()
        return cursor.fetchall()


def _pg_vector(sql: str, params: list[Any], *, exact: bool) -> Scored:
    rows = pg_vector_rows(sql, params, exact=exact)
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
    if not filters.metadata and _MATRICES.budget() > 0:
        return _MATRICES.search(
            kb_ids=kb_ids, model_key=model_key, query=query, top_k=top_k, filters=filters
        )
    return sqlite_scan(sql, params, query=query, top_k=top_k)


def sqlite_scan(sql: str, params: list[Any], *, query: Sequence[float], top_k: int) -> Scored:
    """The exact scan straight from the BLOBs (`vector_sql`'s rows, decoded and scored):
    what SQLite runs when the vectors are not in memory (metadata filters, a cache too
    small) and what loading them costs."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(
        len(rows), len(query)
    )
    return _top(ids, matrix, np.asarray(query, dtype=np.float32), top_k)


def _top(ids: Sequence[Any], matrix: Any, query: Any, top_k: int, mask: Any = None) -> Scored:
    # einsum, not `matrix @ query`: the BLAS product spreads over threads that spin and
    # stall for milliseconds on a busy machine; one thread is as fast at this size.
    scores = np.einsum("ij,j->i", matrix, query)
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
        available = int(mask.sum())
    else:
        available = len(ids)
    count = min(top_k, available)
    if count <= 0:
        return []
    best = np.argpartition(-scores, count - 1)[:count]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [(_uuid(ids[i]), max(0.0, min(1.0, float(scores[i])))) for i in best]


# --- SQLite: vectors kept in memory ---------------------------------------------------

VERSION_TABLE = "knowledge_chunk_version"
_VERSION_TRIGGERS = {
    "knowledge_chunk_version_ai": "AFTER INSERT ON knowledge_chunk BEGIN {bump_new} END",
    "knowledge_chunk_version_ad": "AFTER DELETE ON knowledge_chunk BEGIN {bump_old} END",
    "knowledge_chunk_version_au": "AFTER UPDATE ON knowledge_chunk BEGIN {bump_old} {bump_new} END",
}
# random(): a version that a rolled-back write produced is never seen again.
_BUMP = (
    f"INSERT INTO {VERSION_TABLE} (knowledge_base_id, version) "  # noqa: S608
    "VALUES ({row}.knowledge_base_id, "
    "random()) ON CONFLICT (knowledge_base_id) DO UPDATE SET version = excluded.version;"
)
DEFAULT_VECTOR_CACHE_BYTES = 256 * 1024 * 1024


def ensure_version_triggers() -> None:
    """Create the chunk-version table and its triggers (SQLite; idempotent, checked on
    every search: a migration that rebuilds the chunk table drops its triggers). When a
    trigger had to be created, every knowledge base gets a new version, so no process
    keeps vectors read while writes went unrecorded."""
    names = [VERSION_TABLE, *_VERSION_TRIGGERS]
    marks = ",".join(["%s"] * len(names))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM sqlite_master WHERE name IN ({marks})", names)  # noqa: S608
        if cursor.fetchone()[0] == len(names):
            return
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {VERSION_TABLE} "
            "(knowledge_base_id char(32) PRIMARY KEY, version integer NOT NULL)"
        )
        for name, body in _VERSION_TRIGGERS.items():
            cursor.execute(
                f"CREATE TRIGGER IF NOT EXISTS {name} "
                + body.format(bump_new=_BUMP.format(row="NEW"), bump_old=_BUMP.format(row="OLD"))
            )
        cursor.execute(
            f"INSERT INTO {VERSION_TABLE} (knowledge_base_id, version) "  # noqa: S608
            "SELECT id, random() FROM knowledge_knowledgebase WHERE true "
            "ON CONFLICT (knowledge_base_id) DO UPDATE SET version = excluded.version"
        )


def _versions(kb_ids: Sequence[uuid.UUID]) -> dict[str, int | None]:
    ensure_version_triggers()
    hexes = _hex(kb_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT knowledge_base_id, version FROM {VERSION_TABLE} "  # noqa: S608
            f"WHERE knowledge_base_id IN ({','.join(['%s'] * len(hexes))})",
            hexes,
        )
        found = dict(cursor.fetchall())
    # No row: no chunk was written since the triggers exist (the vectors read then hold).
    return {h: found.get(h) for h in hexes}


@dataclass
class _Matrix:
    version: int | None
    ids: list[Any]
    documents: Any  # int32 index into document_ids, one per row
    document_ids: dict[str, int]
    matrix: Any  # float32 (rows, dims)

    @property
    def nbytes(self) -> int:
        return int(self.matrix.nbytes + self.documents.nbytes) + 80 * len(self.ids)


class VectorMatrices:
    """The enabled vectors of each (knowledge base, model, size) this process searched,
    decoded once, least recently used first out past KNOWLEDGE_VECTOR_CACHE_BYTES (a
    knowledge base larger than that is scanned from the database every time)."""

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str, int], _Matrix] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def budget() -> int:
        return int(getattr(settings, "KNOWLEDGE_VECTOR_CACHE_BYTES", DEFAULT_VECTOR_CACHE_BYTES))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def _get(self, key: tuple[str, str, int], version: int | None) -> _Matrix | None:
        with self._lock:
            entry = self._items.get(key)
            if entry is None or entry.version != version:
                return None
            self._items.move_to_end(key)
            return entry

    def _put(self, key: tuple[str, str, int], entry: _Matrix) -> None:
        budget = self.budget()
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
            if entry.nbytes > budget:
                return
            self._items[key] = entry
            self._bytes += entry.nbytes
            while self._bytes > budget:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def _load(self, kb_id: uuid.UUID, model_key: str, dims: int, version: int | None) -> _Matrix:
        sql, params = vector_sql(
            kb_ids=[kb_id], model_key=model_key, query=[0.0] * dims, top_k=0, filters=Filters()
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        document_ids: dict[str, int] = {}
        documents = np.fromiter(
            (document_ids.setdefault(str(row[2]), len(document_ids)) for row in rows),
            dtype=np.int32,
            count=len(rows),
        )
        matrix = np.frombuffer(b"".join(row[1] for row in rows), dtype="<f4").reshape(
            len(rows), dims
        )
        return _Matrix(
            version=version,
            ids=[row[0] for row in rows],
            documents=documents,
            document_ids=document_ids,
            matrix=matrix,
        )

    def search(
        self,
        *,
        kb_ids: Sequence[uuid.UUID],
        model_key: str,
        query: Sequence[float],
        top_k: int,
        filters: Filters,
    ) -> Scored:
        """`vector_search` from memory (loading what is missing or out of date)."""
        dims = len(query)
        vector = np.asarray(query, dtype=np.float32)
        hits: Scored = []
        versions = _versions(kb_ids)
        for kb_id in dict.fromkeys(kb_ids):
            key = (kb_id.hex, model_key, dims)
            version = versions[kb_id.hex]
            entry = self._get(key, version)
            if entry is None:
                entry = self._load(kb_id, model_key, dims, version)
                self._put(key, entry)  # used for this query even when it does not fit
            mask = None
            if filters.document_ids:
                wanted = [
                    entry.document_ids[str(d)]
                    for d in _hex(filters.document_ids)
                    if str(d) in entry.document_ids
                ]
                mask = np.isin(entry.documents, np.asarray(wanted, dtype=np.int32))
            hits.extend(_top(entry.ids, entry.matrix, vector, top_k, mask))
        hits.sort(key=lambda item: (-item[1], str(item[0])))
        return hits[:top_k]


_MATRICES = VectorMatrices()


# --- hydration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Passage:
    """What a search hit shows of a chunk."""

    document_id: uuid.UUID
    document_name: str
    knowledge_base_id: uuid.UUID
    position: int
    content: str
    metadata: dict[str, Any]


def passages_sql(chunk_ids: Sequence[uuid.UUID]) -> tuple[str, list[Any]]:
    """The SQL that loads ranked chunks with their documents' names (one query)."""
    params: list[Any]
    if is_postgres():
        where, params = "c.id = ANY(%s)", [list(chunk_ids)]
    else:
        # Only the primary key: the ids come from queries already restricted to the
        # knowledge bases, and another condition can make SQLite pick a worse index.
        where, params = f"c.id IN ({','.join(['%s'] * len(chunk_ids))})", _hex(chunk_ids)
    sql = (
        "SELECT c.id, c.document_id, d.name, c.knowledge_base_id, c.position, c.content, "  # noqa: S608
        f"c.metadata FROM {CHUNK_TABLE} c JOIN {DOCUMENT_TABLE} d ON d.id = c.document_id "
        f"WHERE {where}"
    )
    return sql, params


def passages_load(chunk_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Passage]:
    """The passages of these chunks by id (deleted ones are missing)."""
    if not chunk_ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(*passages_sql(chunk_ids))
        rows = cursor.fetchall()
    return {
        _uuid(chunk_id): Passage(
            document_id=_uuid(document_id),
            document_name=name,
            knowledge_base_id=_uuid(kb_id),
            position=int(position),
            content=content,
            metadata=json.loads(metadata) if isinstance(metadata, str) else (metadata or {}),
        )
        for chunk_id, document_id, name, kb_id, position, content, metadata in rows
    }


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


@dataclass(frozen=True)
class SearchHit:
    """One ranked passage."""

    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_name: str
    knowledge_base_id: uuid.UUID
    position: int
    content: str
    score: float
    metadata: dict[str, Any] = field(default_factory=dict)
    rerank_score: float | None = None  # the rerank model's relevance, when it reranked

    @property
    def rank_score(self) -> float:
        """The score the hit was ranked by: the rerank score, else the retrieval score."""
        return self.score if self.rerank_score is None else self.rerank_score

    def citation(self, *, snippet_chars: int = 300) -> Citation:
        snippet = (
            self.content
            if len(self.content) <= snippet_chars
            else (self.content[: snippet_chars - 1].rstrip() + "…")
        )
        return Citation(
            document_id=str(self.document_id),
            document_name=self.document_name,
            chunk_id=str(self.chunk_id),
            snippet=snippet,
            score=round(self.rank_score, 6),
            knowledge_base_id=str(self.knowledge_base_id),
            position=self.position,
        )
