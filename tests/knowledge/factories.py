from apps.knowledge import services
from apps.knowledge.models import KnowledgeBase
from apps.knowledge.services import IncomingFile
from apps.users.actors import Actor
from apps.users.choices import Role
from apps.users.models import Membership


def actor_for(*, user, workspace) -> Actor:
    membership = Membership.objects.get(user=user, workspace=workspace)
    return Actor(user=user, workspace=workspace, role=Role(membership.role))


def make_kb(*, user, workspace, name="Handbook", **fields) -> KnowledgeBase:
    return services.knowledge_base_create(
        actor=actor_for(user=user, workspace=workspace), name=name, **fields
    )


def add_texts(*, user, kb, texts: dict[str, str], metadata=None):
    """Add {filename: text} documents as one batch (ingestion is queued on commit)."""
    return services.documents_add(
        actor=actor_for(user=user, workspace=kb.workspace),
        knowledge_base=kb,
        files=[IncomingFile(name=name, data=text.encode()) for name, text in texts.items()],
        metadata=metadata,
    )
