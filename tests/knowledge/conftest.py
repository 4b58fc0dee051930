import pytest


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    """Uploaded files go to a folder of the test."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.KNOWLEDGE_RATE_LIMIT_BACKOFF_SECONDS = 0


@pytest.fixture
def embedder(scripted_llm, workspace):
    """The scripted provider as the workspace's default embedding model."""
    from tests.providers.factories import make_scripted_provider

    _, _, embedding = make_scripted_provider(workspace=workspace, scripted_llm=scripted_llm)
    return embedding


@pytest.fixture(autouse=True)
def _no_cached_query_vectors():
    from apps.knowledge.selectors import _QUERY_VECTORS

    _QUERY_VECTORS.clear()
    yield
    _QUERY_VECTORS.clear()
