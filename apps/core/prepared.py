"""Querysets compiled once per process: for the few reads every request makes.

Building a queryset (`filter`, `annotate`, `select_related`) and compiling it to SQL is
most of what Django spends on a one-row lookup by a unique index: for the API key lookup
of every authenticated request it was several times the SQL itself. A `PreparedQuery`
builds and compiles its queryset once per database alias, with sentinel values where the
request's values go, and then runs the same SQL with the request's values bound, turning
the row into model instances the way the ORM does (its converters, `select_related`
populators and annotations), so the result is what `queryset.first()` returns.

    _KEY = PreparedQuery(
        lambda key_hash: ApiKey.objects.select_related("user").filter(key_hash=key_hash),
        key_hash=ApiKey._meta.get_field("key_hash"),
    )
    key = _KEY.first(key_hash=digest)

Every parameter names the model field it is compared with (the value is prepared for the
database as that field prepares it) and must be compared with `exact`, so that each
sentinel appears in the compiled parameters as the field prepared it. The SQL goes
through the connection's cursor like any ORM query (query logging, `assertNumQueries`,
execute wrappers). Only for querysets whose SQL does not depend on anything but these
values (no `now()` in Python, no settings read at build time).
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.models import Field, Model, QuerySet
from django.db.models.query import get_related_populators

M = TypeVar("M", bound=Model)


class _Compiled:
    """The SQL of one queryset for one database alias and how to read its rows."""

    def __init__(self, queryset: QuerySet[Any], alias: str, sentinels: dict[str, Any]) -> None:
        connection = connections[alias]
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        self.sql = sql
        self.params = list(params)
        # Where each parameter goes: the positions of its sentinel, as the field prepared it.
        self.slots: list[tuple[int, str]] = []
        for name, (field, sentinel) in sentinels.items():
            prepared = field.get_db_prep_value(sentinel, connection, prepared=False)
            positions = [i for i, value in enumerate(self.params) if value == prepared]
            if not positions:
                raise ValueError(f"PreparedQuery: parameter {name!r} is not in the SQL")
            self.slots.extend((i, name) for i in positions)
        select, klass_info = compiler.select, compiler.klass_info
        assert klass_info is not None, "PreparedQuery reads model rows only"
        self.model = klass_info["model"]
        select_fields = klass_info["select_fields"]
        self.start, self.end = select_fields[0], select_fields[-1] + 1
        self.init_list = [column[0].target.attname for column in select[self.start : self.end]]
        self.annotations = dict(compiler.annotation_col_map or {})
        fields = [column[0] for column in select[0 : compiler.col_count]]
        self.converters = list(compiler.get_converters(fields).items())
        self.populators = get_related_populators(klass_info, select, alias)  # type: ignore[call-arg]


class PreparedQuery(Generic[M]):
    """`build(**values)` compiled once per database alias; `first(**values)` runs it."""

    def __init__(self, build: Callable[..., QuerySet[M]], **fields: Field[Any, Any]) -> None:
        self._build = build
        self._fields = fields
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def _sentinels(self) -> dict[str, tuple[Field[Any, Any], Any]]:
        out = {}
        for name, field in self._fields.items():
            marker = uuid.uuid4()
            target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
            kind = target.get_internal_type()
            if kind == "UUIDField":
                value: Any = marker
            elif kind in ("CharField", "TextField", "SlugField"):
                value = f"~{marker.hex}"
            else:
                raise TypeError(f"PreparedQuery: no sentinel for a {kind} ({name!r})")
            out[name] = (field, value)
        return out

    def _compile(self, alias: str) -> _Compiled:
        compiled = self._compiled.get(alias)
        if compiled is None:
            with self._lock:
                compiled = self._compiled.get(alias)
                if compiled is None:
                    sentinels = self._sentinels()
                    queryset = self._build(**{k: v for k, (_, v) in sentinels.items()})
                    compiled = _Compiled(queryset[:1], alias, sentinels)
                    self._compiled[alias] = compiled
        return compiled

    def first(self, **values: Any) -> M | None:
        """The first row for these values as a model instance (with its select_related
        objects and annotations), or None."""
        alias = router.db_for_read(self._model_hint()) or "default"
        compiled = self._compile(alias)
        connection = connections[alias]
        params = list(compiled.params)
        for position, name in compiled.slots:
            field = self._fields[name]
            params[position] = field.get_db_prep_value(values[name], connection, prepared=False)
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            row = cursor.fetchone()
        if row is None:
            return None
        if compiled.converters:
            row = list(row)
            for position, (converters, expression) in compiled.converters:
                value = row[position]
                for converter in converters:
                    value = converter(value, expression, connection)
                row[position] = value
        obj = compiled.model.from_db(alias, compiled.init_list, row[compiled.start : compiled.end])
        for populator in compiled.populators:
            populator.populate(row, obj)
        for name, position in compiled.annotations.items():
            setattr(obj, name, row[position])
        return obj  # type: ignore[no-any-return]

    def _model_hint(self) -> type[Model]:
        field = next(iter(self._fields.values()))
        return field.model  # type: ignore[no-any-return]
