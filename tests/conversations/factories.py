"""Conversations, runs and messages made directly (no model call)."""

from typing import Any

from apps.conversations.models import Conversation, Run
from apps.conversations.services import message_create


def make_conversation(*, agent: Any, user: Any, title: str = "") -> Conversation:
    return Conversation.objects.create(
        workspace=agent.workspace, agent=agent, user=user, title=title
    )


def make_exchange(*, conversation: Conversation, question: str, answer: str) -> Run:
    """A completed run with its user message and answer."""
    run = Run.objects.create(
        conversation=conversation,
        workspace=conversation.workspace,
        agent=conversation.agent,
        created_by=conversation.user,
        status="completed",
    )
    user_msg = message_create(
        conversation_id=conversation.id,
        run_id=run.id,
        message={"role": "user", "content": question},
    )
    answer_msg = message_create(
        conversation_id=conversation.id,
        run_id=run.id,
        message={"role": "assistant", "content": answer},
    )
    run.message = user_msg
    run.answer_message = answer_msg
    run.save(update_fields=["message", "answer_message"])
    return run
