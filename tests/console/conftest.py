"""Fixtures of the console tests: a workspace with one of everything, and Django test
clients signed in as its owner and as a member of another workspace."""

from types import SimpleNamespace

import pytest
from django.test import Client

from apps.conversations.services import share_create
from apps.users.models import ApiKey
from tests.agents.factories import actor_for, make_agent, make_chat_model
from tests.conversations.conftest import http, live  # noqa: F401
from tests.conversations.factories import make_conversation, make_exchange
from tests.knowledge.factories import add_texts, make_kb
from tests.users.factories import UserFactory, make_api_key


@pytest.fixture
def owner_client(user):
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def outsider_client(db):
    client = Client()
    client.force_login(UserFactory(email="mallory@example.com", name="Mallory"))
    return client


@pytest.fixture
def objects(user, workspace):
    """One of each object the console shows, in alice's personal workspace."""
    model = make_chat_model(workspace=workspace)
    kb = make_kb(user=user, workspace=workspace)
    add_texts(user=user, kb=kb, texts={"guide.txt": "The office opens at 9."})
    agent = make_agent(workspace=workspace, user=user, name="Helper", model_id=model.id)
    conv = make_conversation(agent=agent, user=user, title="Opening hours")
    run = make_exchange(conversation=conv, question="When?", answer="At **9**.")
    key, _ = make_api_key(user=user, workspace=workspace)
    share = share_create(actor=actor_for(user=user, workspace=workspace), conversation=conv)
    assert isinstance(key, ApiKey)
    return SimpleNamespace(
        model=model,
        provider=model.provider,
        kb=kb,
        agent=agent,
        conversation=conv,
        run=run,
        message=run.answer_message,
        key=key,
        share=share,
    )
