"""The default DRF permission of every API view (see REST_FRAMEWORK settings)."""

from apps.users.actors import WorkspaceActor

__all__ = ["WorkspaceActor"]
