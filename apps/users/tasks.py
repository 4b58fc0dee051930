from celery import shared_task

from apps.users.services import dynamic_clients_purge_unused


@shared_task(name="users.purge_unused_dynamic_clients")
def purge_unused_dynamic_clients() -> int:
    """Delete dynamically registered OAuth2 clients never used within their expiry (beat)."""
    return dynamic_clients_purge_unused()
