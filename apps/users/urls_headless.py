"""allauth headless: /_allauth/browser/v1/... (session + CSRF) and /_allauth/app/v1/...
(access + refresh tokens), with its OpenAPI document at /_allauth/openapi.html."""

from django.urls import include, path

urlpatterns = [path("_allauth/", include("allauth.headless.urls"))]
