"""Errors of providers and of model calls. Messages never contain a key."""

from apps.core.exceptions import ApplicationError, Conflict, NotFound


class ProviderNotFound(NotFound):
    code = "provider_not_found"
    default_message = "Provider not found."


class ModelNotFoundError(NotFound):
    """The model id is unknown here (not the upstream's answer: see ModelNotFound)."""

    code = "provider_model_not_found"
    default_message = "Model not found."


class ProviderInUse(Conflict):
    code = "provider_in_use"
    default_message = "This provider's models are used; reassign them or remove their users."


class ModelInUse(Conflict):
    code = "model_in_use"
    default_message = "This model is used; reassign it or remove its users first."


class ProviderError(ApplicationError):
    """A model call failed. `retryable` errors are retried, rotated and failed over."""

    code = "provider_error"
    status = 502
    default_message = "The model provider returned an error."
    retryable = False


class ProviderAuthFailed(ProviderError):
    code = "provider_auth_failed"
    default_message = "The provider refused the API key."


class ProviderUnreachable(ProviderError):
    code = "provider_unreachable"
    default_message = "The provider could not be reached."
    retryable = True


class ProviderRateLimited(ProviderError):
    code = "provider_rate_limited"
    status = 429
    default_message = "The provider is rate limiting requests."
    retryable = True


class ProviderServerError(ProviderError):
    code = "provider_server_error"
    default_message = "The provider failed (5xx)."
    retryable = True


class ProviderTimeout(ProviderError):
    code = "provider_timeout"
    status = 504
    default_message = "The provider did not answer in time."
    retryable = True


class ProviderBadRequest(ProviderError):
    code = "provider_bad_request"
    status = 400
    default_message = "The provider rejected the request."


class ProviderBadResponse(ProviderError):
    """The provider answered 2xx with something that is not the expected shape."""

    code = "provider_bad_response"
    default_message = "The provider's answer could not be understood."


class ModelNotFound(ProviderError):
    code = "model_not_found"
    status = 400
    default_message = "The provider does not know this model."


class NoModelConfigured(ProviderError):
    code = "no_model_configured"
    status = 400
    default_message = "No model is configured: choose one or set a default model."


class ProviderDisabled(ProviderError):
    code = "provider_disabled"
    status = 400
    default_message = "This provider or model is disabled."


class ProviderNoKey(ProviderError):
    code = "provider_no_key"
    status = 400
    default_message = "This provider has no usable API key."


class ProviderUrlBlocked(ProviderError):
    """The provider's base URL resolves to an address the outbound guard refuses."""

    code = "url_not_allowed"
    status = 400
    default_message = "The provider's URL points to an address the server may not reach."
