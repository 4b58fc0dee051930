"""Views for tests/core/test_request_threads.py: which thread and database connection
served the request, and one that waits until the test lets it go."""

import threading
from typing import Any

from django.db import connection, connections
from django.http import HttpRequest, JsonResponse
from django.urls import path

from apps.users.models import User

release = threading.Event()
wrappers: dict[int, Any] = {}  # thread ident -> that thread's DatabaseWrapper


def ident(request: HttpRequest) -> JsonResponse:
    User.objects.exists()  # a query: the thread's connection is open
    wrappers[threading.get_ident()] = connections["default"]
    return JsonResponse({"thread": threading.get_ident(), "connection": id(connection.connection)})


def wait(request: HttpRequest) -> JsonResponse:
    assert release.wait(10), "the test never let the request go"
    return JsonResponse({"thread": threading.get_ident()})


urlpatterns = [path("ident", ident), path("wait", wait)]
