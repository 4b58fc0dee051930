from collections.abc import Mapping
from typing import Any

import orjson
from rest_framework.renderers import JSONRenderer
from rest_framework.utils.encoders import JSONEncoder

from apps.core.api.envelope import Enveloped, request_meta

# Datetimes go through DRF's encoder (its ISO format, milliseconds, `Z`), like every type
# orjson does not know; UUIDs, str/int/dict/list subclasses are orjson's and equal DRF's.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME
_ENCODER = JSONEncoder()
_LINE_SEPARATOR = "\u2028".encode()
_PARAGRAPH_SEPARATOR = "\u2029".encode()


class EnvelopeJSONRenderer(JSONRenderer):
    """Wraps every body in `{data, meta}` unless it is already an envelope.

    Encodes with orjson: the same compact UTF-8 JSON as DRF's renderer (U+2028/U+2029
    escaped too), several times faster. What orjson refuses (non-string keys, integers
    over 64 bits) falls back to DRF's renderer; floats are written in orjson's shortest
    form (`1e-5` where DRF writes `1e-05`: the same number); NaN and infinities become
    null (DRF's strict mode refused them with an error).
    """

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
        elif isinstance(data, list):
            # A list that is not paginated is one complete page: the same list meta as
            # every paginated list, so a client reads every list the same way.
            body = {"data": data, "meta": {**meta, "has_more": False, "next_cursor": None}}
        else:
            body = {"data": data, "meta": meta}
        if self.get_indent(accepted_media_type or "", context) is not None:
            return super().render(body, accepted_media_type, renderer_context)
        try:
            out = orjson.dumps(body, default=_ENCODER.default, option=_OPTIONS)
        except TypeError:  # orjson.JSONEncodeError is a TypeError
            return super().render(body, accepted_media_type, renderer_context)
        if _LINE_SEPARATOR in out or _PARAGRAPH_SEPARATOR in out:
            out = out.replace(_LINE_SEPARATOR, b"\\u2028").replace(_PARAGRAPH_SEPARATOR, b"\\u2029")
        return out
