"""A URLconf for tests that need a view which fails unexpectedly."""

from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response

from apps.core.api.base import ApiView


class ExplodingView(ApiView):
    def get(self, request: Request) -> Response:
        raise RuntimeError("secret internal detail /srv/app/module.py line 42")


urlpatterns = [
    path("api/v1/explode", ExplodingView.as_view()),
    path("", include("config.urls")),
]
