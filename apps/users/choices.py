from django.db import models


class Role(models.TextChoices):
    """A member's role in a workspace, from least to most powerful."""

    VIEWER = "viewer", "Viewer"
    MEMBER = "member", "Member"
    ADMIN = "admin", "Admin"
    OWNER = "owner", "Owner"

    @property
    def rank(self) -> int:
        return ROLE_RANK[self]

    def at_least(self, other: "Role") -> bool:
        return ROLE_RANK[self] >= ROLE_RANK[other]


ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


class CredentialKind(models.TextChoices):
    SESSION = "session", "Browser session"
    API_KEY = "api_key", "API key"
    OAUTH2 = "oauth2", "OAuth2 access token"
