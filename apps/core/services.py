"""Writes of the core app: system settings and idempotency records."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.exceptions import Conflict
from apps.core.models import IdempotencyRecord, SystemSettings
from apps.core.selectors import system_settings_get


def system_settings_update(*, updated_by: Any, **fields: Any) -> SystemSettings:
    """Change runtime settings. Only known fields are accepted (the caller validated them)."""
    current = system_settings_get()
    for name, value in fields.items():
        setattr(current, name, value)
    current.updated_by = updated_by
    current.save()
    return current


@dataclass(frozen=True)
class IdempotencyOutcome:
    record: IdempotencyRecord
    replay: bool


def idempotency_begin(*, owner: str, key: str, request_hash: str) -> IdempotencyOutcome:
    """Claim `key` for this request or find the stored response to replay.

    Raises Conflict when the key was used with another body, or while the first request
    with this key is still being processed. Expired records are replaced.
    """
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    IdempotencyRecord.objects.filter(owner=owner, key=key, created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                owner=owner, key=key, request_hash=request_hash
            )
        return IdempotencyOutcome(record=record, replay=False)
    except IntegrityError:
        pass
    record = IdempotencyRecord.objects.get(owner=owner, key=key)
    if record.request_hash != request_hash:
        raise Conflict(
            "This Idempotency-Key was already used with a different request body.",
            code="idempotency_key_reused",
        )
    if record.status_code is None:
        raise Conflict(
            "A request with this Idempotency-Key is still being processed.",
            code="idempotency_in_progress",
        )
    return IdempotencyOutcome(record=record, replay=True)


def idempotency_finish(*, record: IdempotencyRecord, status_code: int, body: Any) -> None:
    """Store a successful response for replay; forget the key after a failure so the
    client can retry it."""
    if 200 <= status_code < 300:
        record.status_code = status_code
        record.response_body = body
        record.save(update_fields=["status_code", "response_body"])
    else:
        record.delete()


def idempotency_purge_expired() -> int:
    """Delete records older than the replay window. Idempotent; returns how many."""
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
