import factory

from apps.users.choices import Role
from apps.users.models import Membership, User
from apps.users.services import user_create, workspace_create


class UserFactory(factory.django.DjangoModelFactory):
    """Users made through the service, so each has its personal workspace."""

    class Meta:
        model = User

    email = factory.Sequence(lambda n: f"user{n}@example.com")
    password = "correct-horse-battery-staple"
    name = factory.Faker("name")

    @classmethod
    def _create(cls, model_class, *args, **kwargs):  # type: ignore[no-untyped-def]
        return user_create(**kwargs)


def add_member(*, workspace, user=None, role=Role.MEMBER) -> Membership:
    user = user or UserFactory()
    return Membership.objects.create(workspace=workspace, user=user, role=role)


def make_workspace(*, owner, name="Team") -> object:
    return workspace_create(user=owner, name=name)


def make_api_key(*, user, workspace, scopes=("read", "write"), expires_at=None, name="test key"):
    """(ApiKey, plaintext) acting as `user` in `workspace` (they must be a member)."""
    from apps.users.actors import Credential, actor_resolve
    from apps.users.choices import CredentialKind
    from apps.users.services import api_key_create

    actor = actor_resolve(
        user=user,
        credential=Credential(kind=CredentialKind.SESSION),
        requested_workspace_id=str(workspace.id),
    )
    if expires_at is not None:
        # Past expiries are allowed here so tests can make already-expired keys.
        key, plaintext = api_key_create(actor=actor, name=name, scopes=scopes)
        key.expires_at = expires_at
        key.save(update_fields=["expires_at"])
        return key, plaintext
    return api_key_create(actor=actor, name=name, scopes=scopes)


def api_key_client(plaintext):
    """An API client sending `Authorization: Bearer <plaintext>`."""
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return client
