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
