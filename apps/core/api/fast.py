"""Serializer output without rebuilding the serializer for every request and row.

A DRF `ModelSerializer` builds its fields on every instantiation (model introspection,
unique-together constraints, a deep copy of every declared field), and `to_representation`
looks up the time zone for every datetime. `serialize_rows(AgentSerializer, rows,
context=...)` gives the same output (same keys, order and values, byte-identical JSON)
from a plan built once per serializer class: each field's source attribute and a
converter. Declared serializer classes stay the API's schema (drf-spectacular reads them);
only reading them at run time gets cheaper.

Supported: read-only output of flat fields (model or declared), including
`SerializerMethodField` (called on one serializer instance per call, with the context)
and `source="a.b"` paths, and nested serializers (one or `many=True`) that output their
fields (each with its own plan and the same context). Anything else (custom fields,
serializers overriding `to_representation`) goes through the field's own
`to_representation`, so the output stays the same, only not faster.
"""

import datetime as dt
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from django.db.models.manager import BaseManager
from django.db.models.query import ValuesIterable
from rest_framework import ISO_8601, serializers
from rest_framework import fields as f
from rest_framework.fields import SkipField, get_attribute
from rest_framework.relations import ManyRelatedField, PKOnlyObject, RelatedField
from rest_framework.settings import api_settings

Converter = Callable[[Any], Any]


_ZERO = dt.timedelta(0)


def _is_utc(tz: Any) -> bool:
    return tz is dt.UTC or getattr(tz, "key", None) == "UTC"


def _datetime(field: f.DateTimeField) -> Converter:
    """DRF's DateTimeField output (ISO 8601, UTC as `Z`); the time zone is looked up
    once per call of serialize_rows (by _bind) instead of once per value."""
    output_format = getattr(field, "format", api_settings.DATETIME_FORMAT)
    if output_format is None or output_format.lower() != ISO_8601:
        return field.to_representation
    return _DatetimeMarker(field)


class _DatetimeMarker:
    """Stands for a datetime converter until _bind knows the current time zone."""

    def __init__(self, field: f.DateTimeField) -> None:
        self.field = field

    def __call__(self, value: Any) -> Any:
        return self.field.to_representation(value)

    def bind(self) -> Converter:
        field = self.field
        tz = field.timezone if hasattr(field, "timezone") else field.default_timezone()
        if not _is_utc(tz):
            return field.to_representation

        def convert(value: Any) -> Any:
            if isinstance(value, dt.datetime) and value.utcoffset() == _ZERO:
                text = value.isoformat()
                return text[:-6] + "Z" if text.endswith("+00:00") else text
            return field.to_representation(value)

        return convert


def _uuid(field: f.UUIDField) -> Converter:
    if field.uuid_format != "hex_verbose":
        return field.to_representation

    def convert(value: Any) -> Any:
        return str(value) if isinstance(value, uuid.UUID) else field.to_representation(value)

    return convert


def _choice(field: f.ChoiceField) -> Converter:
    mapping = field.choice_strings_to_values

    def convert(value: Any) -> Any:
        if value in ("", None):
            return value
        return mapping.get(str(value), value)

    return convert


def _list_of_str(value: Any) -> list[str]:
    return [str(item) for item in value]


def _converter(field: f.Field) -> Converter:
    """The cheapest function that gives `field.to_representation`'s result."""
    kind = type(field)
    if kind in (f.CharField, f.SlugField, f.EmailField, f.URLField, f.RegexField):
        return str
    if kind is f.IntegerField:
        return int
    if kind is f.FloatField:
        return float
    if kind is f.BooleanField:
        return field.to_representation  # accepts "true"/"1" strings as DRF does
    if kind is f.UUIDField:
        return _uuid(field)  # type: ignore[arg-type]
    if kind is f.DateTimeField:
        return _datetime(field)  # type: ignore[arg-type]
    if kind is f.ChoiceField:
        return _choice(field)  # type: ignore[arg-type]
    if kind is f.ListField and type(field.child) is f.CharField:  # type: ignore[attr-defined]
        return _list_of_str
    return field.to_representation


class _Plan:
    """What one serializer class outputs, per field: its name, how to read it (a source
    path, a method of the serializer, or the field's own get_attribute) and a converter."""

    ATTR, FAST, METHOD, FIELD, NESTED = 0, 1, 2, 3, 4

    def __init__(self, serializer_class: type[serializers.BaseSerializer]) -> None:
        self.entries: list[tuple[int, str, Any, Any]] = []
        serializer: Any = serializer_class()
        model = getattr(getattr(serializer_class, "Meta", None), "model", None)
        # A model's concrete columns are plain attributes (never callables): read directly.
        columns = {f.attname for f in model._meta.concrete_fields} if model is not None else set()
        for name, field in serializer.fields.items():
            if field.write_only:
                continue
            if isinstance(field, serializers.SerializerMethodField):
                self.entries.append((self.METHOD, name, field.method_name, None))
            elif _plain_nested(field):
                # A nested plain serializer (one, or many): its own plan, same context.
                many = isinstance(field, serializers.ListSerializer)
                child = type(field.child) if many else type(field)  # type: ignore[attr-defined]
                self.entries.append((self.NESTED, name, tuple(field.source_attrs), (child, many)))
            elif isinstance(field, RelatedField | ManyRelatedField | serializers.BaseSerializer):
                # Related and nested fields: DRF's own reading (PKOnlyObject, managers).
                self.entries.append((self.FIELD, name, field, field.to_representation))
            else:
                # source "*" has no attributes: the field gets the row itself.
                path = tuple(field.source_attrs)
                if len(path) == 1 and path[0] in columns:
                    self.entries.append((self.ATTR, name, path[0], _converter(field)))
                else:
                    self.entries.append((self.FAST, name, path, _converter(field)))


_PLANS: dict[type[serializers.BaseSerializer], _Plan] = {}


def _plain_nested(field: f.Field) -> bool:
    """A nested serializer whose output is its fields' (no overridden to_representation),
    or a plain list of them."""
    inner: Any = field.child if type(field) is serializers.ListSerializer else field  # type: ignore[attr-defined]
    if not isinstance(inner, serializers.Serializer):
        return False
    return (
        type(inner).to_representation is serializers.Serializer.to_representation
        and not isinstance(inner, serializers.ListSerializer)
        and field.source != "*"
    )


def _plan(serializer_class: type[serializers.BaseSerializer]) -> _Plan:
    plan = _PLANS.get(serializer_class)
    if plan is None:
        plan = _PLANS[serializer_class] = _Plan(serializer_class)
    return plan


def serialize_rows(
    serializer_class: type[serializers.BaseSerializer],
    rows: Iterable[Any],
    *,
    context: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """`serializer_class(rows, many=True, context=context).data`, as plain dicts."""
    plan = _plan(serializer_class)
    methods: Any = serializer_class(context=context or {})
    entries = []
    for kind, name, how, convert in plan.entries:
        if kind == _Plan.METHOD:
            how = getattr(methods, how)
        elif kind == _Plan.NESTED:
            child, many = convert
            kind, convert = _Plan.FAST, _nested(child, many, context)
        elif isinstance(convert, _DatetimeMarker):
            convert = convert.bind()
        entries.append((kind, name, how, convert))
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        is_mapping = isinstance(row, Mapping)
        for kind, name, how, convert in entries:
            if kind == _Plan.ATTR:
                value = row[how] if is_mapping else getattr(row, how)
            elif kind == _Plan.FAST:
                value = get_attribute(row, how)
            elif kind == _Plan.METHOD:
                item[name] = how(row)
                continue
            else:
                try:
                    value = how.get_attribute(row)
                except SkipField:
                    continue
                if isinstance(value, PKOnlyObject) and value.pk is None:
                    value = None
            item[name] = None if value is None else convert(value)
        out.append(item)
    return out


_PROTOTYPES: dict[type[serializers.BaseSerializer], Any] = {}


def validated_input(serializer_class: type[serializers.Serializer], data: Any) -> Any:
    """`serializer_class(data=data)`'s `validated_data` after `is_valid(raise_exception=
    True)` (the same errors, naming the same fields), with the fields built once per
    process: DRF deep-copies every declared field (and nested serializer) per instance.

    Only for input serializers whose fields and validators read neither `context` nor an
    instance (the shared fields' parent is a prototype without either); `validate_<field>`
    and `validate` run on the new serializer as usual. Validation keeps no state on fields,
    so threads can share them."""
    prototype = _PROTOTYPES.get(serializer_class)
    if prototype is None:
        prototype = serializer_class()
        prototype.fields  # noqa: B018  (built and bound once)
        _PROTOTYPES[serializer_class] = prototype
    serializer = serializer_class(data=data)
    serializer.fields = prototype.fields  # type: ignore[misc]  # fields is a cached_property
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class Row(dict[str, Any]):
    """A `.values()` row that reads like the model instance it stands for (`row.name`,
    `row.pk`), for the code around a serializer (method fields, permission checks) when a
    list endpoint reads rows instead of building model instances: the serializer plans
    read its columns as a mapping. `pk` is the `id` column."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def pk(self) -> Any:
        return self["id"]


def values_rows(queryset: Any) -> Any:
    """`queryset.values()` (every concrete column by attname, and the annotations) whose
    rows are `Row`s: no model instances (their __init__ was the largest single cost of a
    50-row list), same converters, so the same values."""
    rows = queryset.values()
    rows._iterable_class = _RowIterable
    return rows


class _RowIterable(ValuesIterable):
    def __iter__(self) -> Any:
        for row in super().__iter__():
            yield Row(row)


def _nested(
    child: type[serializers.BaseSerializer], many: bool, context: dict[str, Any] | None
) -> Converter:
    if many:
        return lambda value: serialize_rows(
            child, value.all() if isinstance(value, BaseManager) else value, context=context
        )
    return lambda value: serialize_rows(child, [value], context=context)[0]


def serialize_row(
    serializer_class: type[serializers.BaseSerializer],
    row: Any,
    *,
    context: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`serializer_class(row, context=context).data`, as a plain dict."""
    return serialize_rows(serializer_class, [row], context=context)[0]
