"""A column holding an embedding on both database profiles.

PostgreSQL: pgvector's `vector` (no fixed dimension, so knowledge bases may use models of
different sizes; the HNSW indexes are partial expression indexes per dimension).
SQLite: a BLOB of little-endian float32 values, searched exactly.
"""

import struct
from typing import Any

from django.db import models


def pack_vector(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def unpack_vector(blob: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(blob) // 4}f", blob))


def vector_literal(values: list[float]) -> str:
    return "[" + ",".join(repr(float(v)) for v in values) + "]"


class EmbeddingField(models.Field):  # type: ignore[type-arg]
    description = "An embedding vector (pgvector on PostgreSQL, float32 BLOB on SQLite)"

    def db_type(self, connection: Any) -> str:
        return "vector" if connection.vendor == "postgresql" else "blob"

    def get_db_prep_value(self, value: Any, connection: Any, prepared: bool = False) -> Any:
        if value is None:
            return None
        values = [float(v) for v in value]
        if connection.vendor == "postgresql":
            return vector_literal(values)
        return pack_vector(values)

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> list[float] | None:
        if value is None:
            return None
        if isinstance(value, bytes | bytearray | memoryview):
            return unpack_vector(bytes(value))
        if isinstance(value, str):
            return [float(v) for v in value.strip("[]").split(",") if v]
        return [float(v) for v in value]

    def to_python(self, value: Any) -> Any:
        return value
