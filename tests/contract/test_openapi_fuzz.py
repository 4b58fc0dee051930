"""The published OpenAPI schema is a contract: a fuzzer (schemathesis) calls every operation
with generated valid and invalid input, authenticated with an API key holding every scope,
and checks each answer against the schema: no 5xx, only declared status codes, declared
content types, bodies that validate against their response schema.

The budget is small and deterministic (a few examples per operation, derandomized; the
coverage phase's boundary values, without probing every unlisted HTTP method) so both CI
profiles run it in a few minutes on two cores. Streaming endpoints are not skipped: their
errors are JSON and their successes are declared as `text/event-stream`.
"""

import json

import hypothesis
import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from apps.users.scopes import API_SCOPES
from tests.users.factories import make_api_key

MAX_EXAMPLES = 3
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _published_schema() -> dict:
    """The schema /api/v1/schema/ serves, generated without a request (collection time)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(document))


schema = schemathesis.openapi.from_dict(_published_schema())
schema.app = get_wsgi_application()
# Unlisted methods answer Django's 405 everywhere; probing each of them on each of the 100
# paths would double the run for one behaviour already covered by the core tests.
schema.config.phases.coverage.unexpected_methods = set()
schema.config.phases.coverage.generate_duplicate_query_parameters = False


@pytest.fixture(autouse=True)
def _requests_keep_the_test_connection():
    """Like Django's test client: the test's database connection (and its transaction)
    survives each in-process request, so requests must not close it."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def bearer(user, workspace):
    _, plaintext = make_api_key(user=user, workspace=workspace, scopes=tuple(API_SCOPES))
    return {"Authorization": f"Bearer {plaintext}"}


@pytest.mark.django_db
@schema.parametrize()
@hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_every_operation_honours_its_published_schema(case, bearer):
    case.call_and_validate(headers=bearer, checks=CHECKS)
