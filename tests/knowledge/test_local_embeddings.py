"""A knowledge base on the local embedding model: ingestion and vector search with no
embedding API at all (the fully offline install)."""

import pytest

from apps.knowledge.models import Document
from apps.knowledge.selectors import knowledge_search
from apps.providers.local_models import MINILM
from apps.providers.services import model_create, provider_create
from tests.knowledge.factories import add_texts, make_kb

pytestmark = pytest.mark.django_db


def test_vector_search_on_the_local_model_finds_paraphrases(
    user, workspace, django_capture_on_commit_callbacks
):
    provider = provider_create(workspace=workspace, actor=user, name="Offline", kind="local")
    model = model_create(provider=provider, name=MINILM, kind="embedding", dimensions=384)
    kb = make_kb(user=user, workspace=workspace, embedding_model_id=model.id)
    texts = {
        "pets.md": "Our office welcomes cats and dogs on Fridays.",
        "travel.md": "Book flights and hotels through the travel desk two weeks ahead.",
        "payroll.md": "Salaries are paid on the last working day of each month.",
    }
    with django_capture_on_commit_callbacks(execute=True):
        add_texts(user=user, kb=kb, texts=texts)
    assert set(Document.objects.filter(knowledge_base=kb).values_list("status", flat=True)) == {
        "indexed"
    }

    def best(query):
        hits = knowledge_search(
            workspace_id=workspace.id,
            knowledge_base_ids=[kb.id],
            query=query,
            top_k=1,
            mode="vector",
            threshold=0.0,
            filters=None,
        )
        return hits[0].document_name

    # No word in common with the answer: only the meaning matches.
    assert best("Can I bring my kitten to work?") == "pets.md"
    assert best("When do employees get their wages?") == "payroll.md"
    assert best("How early should I reserve a plane ticket?") == "travel.md"
