"""Cursor pagination: `?limit=1..100&cursor=...` -> `meta.has_more`, `meta.next_cursor`."""

from base64 import b64encode
from typing import Any
from urllib import parse

from rest_framework import pagination
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.envelope import Enveloped
from apps.core.exceptions import ApplicationError, ValidationFailed

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


class InvalidCursor(ApplicationError):
    code = "invalid_cursor"
    status = 400
    default_message = "The cursor is invalid or has expired."


def parse_limit(request: Request, default: int = DEFAULT_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"limit must be an integer from 1 to {MAX_LIMIT}.", field="limit")
    return limit


class CursorPagination(pagination.CursorPagination):
    """DRF's opaque-cursor pagination with our envelope; newest first by default."""

    ordering = ("-created_at", "-id")
    page_size = DEFAULT_LIMIT
    max_page_size = MAX_LIMIT
    page_size_query_param = "limit"
    invalid_cursor_message = "The cursor is invalid or has expired."

    def get_page_size(self, request: Request) -> int:
        return parse_limit(request, self.page_size)

    def decode_cursor(self, request: Request) -> Any:
        try:
            return super().decode_cursor(request)
        except Exception as exc:  # DRF raises NotFound for any undecodable cursor
            raise InvalidCursor() from exc

    def encode_cursor(self, cursor: Any) -> str:
        tokens: dict[str, Any] = {}
        if cursor.offset != 0:
            tokens["o"] = str(cursor.offset)
        if cursor.reverse:
            tokens["r"] = "1"
        if cursor.position is not None:
            tokens["p"] = cursor.position
        return b64encode(parse.urlencode(tokens, doseq=True).encode("ascii")).decode("ascii")

    def get_paginated_response(self, data: Any) -> Response:
        next_cursor = self.get_next_link()
        return Response(
            Enveloped(
                {
                    "data": data,
                    "meta": {"has_more": next_cursor is not None, "next_cursor": next_cursor},
                }
            )
        )

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["data", "meta"],
            "properties": {
                "data": schema,
                "meta": {"$ref": "#/components/schemas/ListMeta"},
            },
        }

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": "limit",
                "in": "query",
                "required": False,
                "description": f"Page size, 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}).",
                "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
            },
            {
                "name": "cursor",
                "in": "query",
                "required": False,
                "description": "The `meta.next_cursor` of the previous page.",
                "schema": {"type": "string"},
            },
        ]
