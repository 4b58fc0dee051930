import uuid

from django.conf import settings
from django.db import models


class BaseModel(models.Model):
    """Abstract base: a UUID primary key and creation/update timestamps."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class SystemSettings(models.Model):
    """The single row of runtime settings an operator changes without a restart."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    allow_registration = models.BooleanField(
        default=True, help_text="New accounts may sign up. Login keeps working when off."
    )
    outbound_allowed_hosts = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Host names or IP networks the server may reach although they are private "
            "(e.g. a local Ollama at 10.0.0.5 or 'ollama.internal')."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        verbose_name = "system settings"
        verbose_name_plural = "system settings"

    def __str__(self) -> str:
        return "System settings"


class IdempotencyRecord(models.Model):
    """A creating POST seen with an Idempotency-Key, and the response it produced."""

    owner = models.CharField(max_length=128, help_text="The credential that sent the request.")
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_owner_key_unique")
        ]

    def __str__(self) -> str:
        return f"{self.owner}:{self.key}"
