"""OpenAPI generation: wrap every success body in the envelope and document the errors."""

import inspect
from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.utils import OpenApiResponse
from rest_framework.permissions import AllowAny

_META = {
    "type": "object",
    "properties": {"request_id": {"type": "string", "example": "req_3f2a9c"}},
    "required": ["request_id"],
}
_LIST_META = {
    "type": "object",
    "properties": {
        "request_id": {"type": "string"},
        "has_more": {"type": "boolean"},
        "next_cursor": {"type": ["string", "null"]},
    },
    "required": ["request_id", "has_more", "next_cursor"],
}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string"},
                "details": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "field": {"type": ["string", "null"]},
                            "message": {"type": "string"},
                        },
                        "required": ["field", "message"],
                    },
                },
            },
            "required": ["code", "message", "details"],
        },
        "meta": {"$ref": "#/components/schemas/Meta"},
    },
    "required": ["error", "meta"],
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorEnvelope"}
_ERROR_DESCRIPTIONS = {
    "400": "Invalid input (`validation_error`, `bad_request`).",
    "401": "Missing or invalid credentials (`unauthorized`).",
    "403": "Not allowed for this credential or role (`forbidden`).",
    "404": "Not found, or in another workspace (`not_found`).",
    "429": "Rate limit exceeded (`rate_limited`); see `Retry-After`.",
    "404:write": "A referenced object is not found, or in another workspace (`*_not_found`).",
    "409": "Conflicts with the current state: a name taken, a busy object, an "
    "`Idempotency-Key` reused with another body (`conflict`, `*_taken`, ...).",
    "413": "The request body is larger than allowed (`payload_too_large`).",
    "415": "The request body's Content-Type is not accepted (`unsupported_media_type`).",
    "502": "The upstream (model provider, MCP server, URL) failed or is unreachable "
    "(`provider_error`, `provider_unreachable`, ...).",
    "504": "The upstream did not answer in time (`provider_timeout`).",
}
_WRITE_METHODS = ("POST", "PUT", "PATCH")


def error_response(description: str) -> dict[str, Any]:
    """An error response as raw OpenAPI (for the generated defaults below)."""
    return {"description": description, "content": {"application/json": {"schema": _ERROR_REF}}}


def error_doc(description: str) -> OpenApiResponse:
    """An error response for a view's `extend_schema(responses=...)`: the error envelope."""
    return OpenApiResponse(response=_ERROR_REF, description=description)


class EnvelopeAutoSchema(AutoSchema):
    """AutoSchema whose responses match what EnvelopeJSONRenderer sends."""

    def _register_envelope_components(self) -> None:
        for name, schema in (("Meta", _META), ("ListMeta", _LIST_META), ("ErrorEnvelope", _ERROR)):
            self.registry.register_on_missing(
                ResolvedComponent(
                    name=name, type=ResolvedComponent.SCHEMA, object=name, schema=schema
                )
            )

    def _get_response_for_code(
        self,
        serializer: Any,
        status_code: str,
        media_types: Any = None,
        direction: Any = "response",
    ) -> dict[str, Any]:
        response: dict[str, Any] = super()._get_response_for_code(
            serializer, status_code, media_types, direction
        )
        # A view speaking another protocol's shapes (e.g. A2A) sets `envelope = False`.
        wrapped = getattr(self.view, "envelope", True)
        for media_type, content in response.get("content", {}).items():
            if media_type != "application/json" or not wrapped:
                continue
            schema = content.get("schema", {})
            ref = schema.get("$ref", "")
            if (
                ref.startswith("#/components/schemas/Paginated")
                or "data" in schema.get("properties", {})
                or ref == _ERROR_REF["$ref"]
            ):
                continue
            content["schema"] = {
                "type": "object",
                "properties": {"data": schema, "meta": {"$ref": "#/components/schemas/Meta"}},
                "required": ["data", "meta"],
            }
        return response

    def get_description(self) -> str:  # type: ignore[override]
        # Only the view's own docstring: not the one it inherits from ApiView.
        doc = type(self.view).__dict__.get("__doc__") or ""
        method_doc = getattr(getattr(self.view, self.method.lower(), None), "__doc__", None)
        return inspect.cleandoc(method_doc or doc)

    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        self._register_envelope_components()
        responses: dict[str, Any] = super()._get_response_bodies(direction)
        public = (
            any(isinstance(p, AllowAny) for p in self.view.get_permissions())
            if hasattr(self.view, "get_permissions")
            else False
        )
        codes = ["400", "429"]
        if not public:
            codes += ["401", "403"]
        if "{" in self.path:
            codes.append("404")
        elif self.method in _WRITE_METHODS:
            codes.append("404:write")
        if self.method in (*_WRITE_METHODS, "DELETE"):
            codes.append("409")
        if self.method in _WRITE_METHODS:
            codes += ["413", "415"]
        # A view that calls an upstream synchronously says so with `calls_upstream = True`.
        if getattr(self.view, "calls_upstream", False):
            codes += ["502", "504"]
        for code in codes:
            responses.setdefault(code.split(":")[0], error_response(_ERROR_DESCRIPTIONS[code]))
        return responses
