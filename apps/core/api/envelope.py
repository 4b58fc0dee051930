"""The success and error envelopes: `{data, meta}` and `{error, meta}`."""

from typing import Any

from django.http import HttpRequest


class Enveloped(dict[str, Any]):
    """A response body that is already an envelope (an error, or a page with list meta).

    The renderer adds `meta.request_id` to it instead of wrapping it in `data`.
    """


def request_meta(request: HttpRequest | None) -> dict[str, Any]:
    return {"request_id": getattr(request, "request_id", None)}
