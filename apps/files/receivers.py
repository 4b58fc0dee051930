"""Stored bytes follow their rows.

A signal, against the house rule, because rows also go by cascade (a workspace or a user
deleted from the admin, `admin_user_delete`) where no files service runs: post_delete
fires for every File however it is deleted, and the bytes are removed after commit
(services.delete_bytes_after_commit), so a rolled-back delete keeps them.
"""

from typing import Any

from django.db.models.signals import post_delete
from django.dispatch import receiver

from apps.files.models import File
from apps.files.services import delete_bytes_after_commit


@receiver(post_delete, sender=File, dispatch_uid="files.delete_bytes")
def _delete_bytes(sender: type[File], instance: File, **kwargs: Any) -> None:
    delete_bytes_after_commit([instance.storage_key])
