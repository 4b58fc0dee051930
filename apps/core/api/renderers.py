from collections.abc import Mapping
from typing import Any

from rest_framework.renderers import JSONRenderer

from apps.core.api.envelope import Enveloped, request_meta


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps every body in `{data, meta}` unless it is already an envelope."""

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        context = renderer_context or {}
        response = context.get("response")
        if response is not None and response.status_code == 204:
            return b""
        request = context.get("request")
        meta = request_meta(getattr(request, "_request", request))
        if isinstance(data, Enveloped):
            body = dict(data)
            body["meta"] = {**meta, **data.get("meta", {})}
        else:
            body = {"data": data, "meta": meta}
        return super().render(body, accepted_media_type, renderer_context)
