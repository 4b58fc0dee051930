"""The data migrations of the tasks app."""

import importlib

import pytest
from django.apps import apps

from apps.conversations.models import Conversation
from apps.tasks.models import TaskExecution
from tests.tasks.test_scheduling import T0, make_task

pytestmark = pytest.mark.django_db

relabel = importlib.import_module("apps.tasks.migrations.0002_conversations_source_task").relabel


def test_task_conversations_labelled_chat_are_relabelled_task(user, workspace, agent):
    task = make_task(user, workspace, agent, conversation_mode="own")
    own, ran, chat = (
        Conversation.objects.create(workspace=workspace, agent=agent, user=user, source="chat")
        for _ in range(3)
    )
    task.conversation = own
    task.save()
    TaskExecution.objects.create(
        task=task, due_at=T0, status="succeeded", available_at=T0, conversation=ran
    )
    relabel(apps, None)
    sources = dict(Conversation.objects.values_list("id", "source"))
    assert sources == {own.id: "task", ran.id: "task", chat.id: "chat"}
