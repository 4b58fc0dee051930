"""Streamed downloads (CSV exports, stored files), right under both of Django's handlers.

Under ASGI a streaming response must be an async iterator, or Django warns and first reads
the whole synchronous iterator into memory (and under WSGI the reverse). `streaming_body`
gives the response what its handler consumes: under ASGI each chunk is read on the
request's thread (where its queryset, database connection or file handle live); under
WSGI (and Django's test client) the chunks are iterated as they are.
"""

import csv
import itertools
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, StreamingHttpResponse

ROWS_PER_CHUNK = 500
T = TypeVar("T", str, bytes)


class _Line:
    """A file-like object whose `write` returns the line (csv.writer's output)."""

    def write(self, value: str) -> str:
        return value


def _csv_chunks(rows: Iterable[list[str]]) -> Iterator[str]:
    writer, rows = csv.writer(_Line()), iter(rows)
    while batch := list(itertools.islice(rows, ROWS_PER_CHUNK)):
        yield "".join(writer.writerow(row) for row in batch)


async def read_on_request_thread(chunks: Iterator[T]) -> AsyncIterator[T]:
    """`chunks` as an async iterator, each `next` on the request's thread (under ASGI)."""

    def take() -> T | None:
        return next(chunks, None)

    read = sync_to_async(take)  # thread-sensitive: the request's own thread
    try:
        while (chunk := await read()) is not None:
            yield chunk
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:  # a generator's cleanup (e.g. closing a file) on its thread
            await sync_to_async(close)()


def streaming_body(request: HttpRequest, chunks: Iterator[T]) -> Iterator[T] | AsyncIterator[T]:
    return read_on_request_thread(chunks) if isinstance(request, ASGIRequest) else chunks


def csv_download(
    request: HttpRequest, rows: Iterable[list[str]], *, filename: str
) -> StreamingHttpResponse:
    body = streaming_body(request, _csv_chunks(rows))
    response = StreamingHttpResponse(body, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
