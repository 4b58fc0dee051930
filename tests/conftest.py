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


# --- the scripted model server (providers) ------------------------------------------------
@pytest.fixture(scope="session")
def _scripted_llm_server():
    from apps.providers.scripted import ScriptedLLM

    server = ScriptedLLM().start()
    yield server
    server.stop()


@pytest.fixture
def scripted_llm(_scripted_llm_server, allow_loopback, settings):
    """A real OpenAI/Anthropic-shaped HTTP server on 127.0.0.1 (one per session, reset for
    each test). Loopback is allow-listed for the outbound guard and retry backoff is
    shortened (PROVIDER_RETRY_BASE_DELAY=0.01) while it is in use.

    Attributes
        .base_url   "http://127.0.0.1:<port>/v1" (OpenAI-compatible providers)
        .root_url   "http://127.0.0.1:<port>"    (Anthropic providers: the SDK adds /v1)
        .requests   JSON bodies received by chat/embeddings endpoints, in order
        .request_log  [{"path", "headers", "body"}] (e.g. headers["authorization"])
        .disconnects  streams the client closed before the end (cancellation)
        .default_text  the answer when nothing is queued ("This is a scripted answer.")
        .embedding_dimensions  vector size of /v1/embeddings (64; a request's
                    `dimensions` wins)
        .token_delay  default seconds between streamed chunks (0)
        .models     ids listed by GET /v1/models

    Scripting: `.push(*replies)` queues chat replies (OpenAI and Anthropic endpoints share
    the queue; each request takes the next). A reply is a str (answer text) or a `Reply`
    (from apps.providers.scripted import Reply, ToolCall) or a dict of its fields:
        scripted_llm.push("Hello there")
        scripted_llm.push(Reply(tool_calls=[ToolCall("search", {"q": "x"})]), "Done.")
        scripted_llm.push(Reply(text="4", reasoning="2+2 is 4", usage=(12, 3)))
        scripted_llm.push(Reply(text="x", include_usage=False))   # client counts tokens
        scripted_llm.push(Reply(status=429, retry_after=0), Reply(status=500))
        scripted_llm.push(Reply(text="a b c d", drop_after=3))   # drop after 3 chunks
        scripted_llm.push(Reply(text="slow", first_byte_delay=2, token_delay=0.05))
    `.push_embeddings(Reply(status=500))` queues an embeddings failure (else it answers).
    `.reset()` clears queues, records and settings (done before every test).
    Vectors: `apps.providers.scripted.embed_text(text, dims)` is what the server returns
    (hashed bag of words, normalised; same text -> same vector).

    Models to call it: tests/providers/factories.py `make_scripted_provider(workspace=...,
    scripted_llm=scripted_llm)` -> (provider, chat_model, embedding_model), set as the
    workspace defaults. The runtime (`apps.providers.services.chat_stream` etc.) is async:
    from a sync test call it through `asgiref.sync.async_to_sync` so its database writes
    use the test's connection.
    """
    settings.PROVIDER_RETRY_BASE_DELAY = 0.01
    settings.PROVIDER_RETRY_MAX_DELAY = 0.05
    _scripted_llm_server.reset()
    yield _scripted_llm_server
    _scripted_llm_server.reset()
