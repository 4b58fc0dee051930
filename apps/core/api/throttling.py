from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from apps.core.api.ratelimit import RateState, client_address, rate_hit


def credential_identity(request: Request) -> tuple[str, str]:
    """(kind, id) of the credential behind a request: an API key, an OAuth2 token, a
    signed-in user, or an anonymous address. Credentials declare their kind with a
    `rate_limit_kind` attribute on `request.auth`."""
    kind = getattr(request.auth, "rate_limit_kind", None)
    if kind is not None and kind != "user":
        return str(kind), str(request.auth.pk)
    if request.user and request.user.is_authenticated:
        return "user", str(request.user.pk)
    return "anon", client_address(request._request)


class CredentialRateThrottle(BaseThrottle):
    """Per-credential request budget; leaves its state for the X-RateLimit-* headers."""

    state: RateState | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        kind, ident = credential_identity(request)
        self.state = rate_hit(kind=kind, ident=ident)
        request._request.rate_state = self.state  # type: ignore[attr-defined]
        return not self.state.exceeded

    def wait(self) -> float | None:
        import time

        if self.state is None:
            return None
        return max(self.state.reset - time.time(), 1.0)
