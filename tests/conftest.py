import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.users.factories import UserFactory


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and other cache state never leak between tests."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user(db):
    return UserFactory(email="alice@example.com", name="Alice")


@pytest.fixture
def workspace(user):
    return user.memberships.get(workspace__is_personal=True).workspace


@pytest.fixture
def client_for():
    """client_for(user) -> an API client signed in as `user` (session credential)."""

    def make(u):
        client = APIClient()
        client.force_authenticate(user=None)
        client.force_login(u)
        return client

    return make


@pytest.fixture
def api(user, client_for):
    return client_for(user)


@pytest.fixture
def outsider(db, client_for):
    """A signed-in member of another workspace."""
    return client_for(UserFactory(email="mallory@example.com", name="Mallory"))


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def allow_loopback(settings):
    """Let the outbound guard reach servers the tests start on 127.0.0.1 / localhost."""
    settings.OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1", "localhost", "::1"]
    yield
