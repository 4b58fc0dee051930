"""The base view every API endpoint derives from: idempotent POSTs and the envelope."""

import hashlib
import json
from typing import Any

from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.api.envelope import Enveloped
from apps.core.api.pagination import CursorPagination
from apps.core.api.throttling import credential_identity
from apps.core.exceptions import ValidationFailed
from apps.core.services import idempotency_begin, idempotency_finish

IDEMPOTENCY_HEADER = "Idempotency-Key"
_MAX_KEY_LENGTH = 255


class _Replay(Exception):
    def __init__(self, status_code: int, body: Any) -> None:
        self.status_code = status_code
        self.body = body


def _request_fingerprint(request: Request) -> str:
    """A hash of what makes two requests "the same": method, path, query and body."""
    digest = hashlib.sha256()
    digest.update(f"{request.method} {request.get_full_path()}\n".encode())
    if request.content_type.startswith("multipart/"):
        for name, value in sorted(request.POST.lists()):
            digest.update(f"{name}={value!r}\n".encode())
        for name, upload in sorted(request.FILES.items()):
            for chunk in upload.chunks():
                digest.update(chunk)
            upload.seek(0)
            digest.update(f"{name}:{upload.name}\n".encode())
    else:
        digest.update(request.body)
    return digest.hexdigest()


class ApiView(APIView):
    """Base API view. A POST with an Idempotency-Key is replayed for 24 h when the same
    credential repeats it with the same body, and refused with 409 for another body."""

    pagination_class = CursorPagination

    def paginate(
        self, request: Request, queryset: Any, serialize: Any, *, ordering: Any = None
    ) -> Response:
        """One page of `queryset`, serialized by `serialize(rows)`, in the list envelope."""
        paginator = self.pagination_class()
        if ordering is not None:
            paginator.ordering = ordering
        page: list[Any] | None = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(serialize(page))

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        self._idempotency_record = None
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method != "POST" or key is None:
            return
        if not key or len(key) > _MAX_KEY_LENGTH:
            raise ValidationFailed(
                f"{IDEMPOTENCY_HEADER} must be 1 to {_MAX_KEY_LENGTH} characters.",
                field=IDEMPOTENCY_HEADER,
            )
        kind, ident = credential_identity(request)
        outcome = idempotency_begin(
            owner=f"{kind}:{ident}", key=key, request_hash=_request_fingerprint(request)
        )
        if outcome.replay:
            assert outcome.record.status_code is not None
            raise _Replay(outcome.record.status_code, outcome.record.response_body)
        self._idempotency_record = outcome.record

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, _Replay):
            body = exc.body
            if isinstance(body, dict) and body.pop("__enveloped__", False):
                body = Enveloped(body)
            return Response(body, status=exc.status_code, headers={"Idempotent-Replayed": "true"})
        return super().handle_exception(exc)

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        response = super().finalize_response(request, response, *args, **kwargs)
        record = getattr(self, "_idempotency_record", None)
        if record is not None:
            self._idempotency_record = None
            if not isinstance(response, Response):
                # A streamed body cannot be stored for replay: release the key instead.
                idempotency_finish(record=record, status_code=0, body=None)
                return response
            body = response.data
            if isinstance(body, Enveloped):
                body = {**body, "__enveloped__": True}
            idempotency_finish(
                record=record,
                status_code=response.status_code,
                body=json.loads(json.dumps(body, default=str)),
            )
        return response
