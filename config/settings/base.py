"""Settings shared by every profile. Everything comes from the environment (django-environ).

The embedded profile (no variables set) runs on SQLite, an in-memory channel layer, a
local-memory cache and a file-system Celery broker. Setting DATABASE_URL and REDIS_URL
switches to the production profile: PostgreSQL, and Redis for channels, cache and broker.
"""

from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env")
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)  # SQLite database, media, the embedded broker

PLATFORM_VERSION = "0.1.0"

SECRET_KEY = env.str("SECRET_KEY", default="insecure-dev-key-change-me")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "daphne",
    # The operator's admin theme (docs/console.md, "The operator"): before the admin so its
    # templates win; the admin's site is the operator's (an unfold site).
    "unfold.apps.BasicAppConfig",
    "apps.console.admin_apps.OperatorAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "allauth.headless",
    "oauth2_provider",
    "apps.core",
    "apps.users",
    "apps.providers",
    "apps.skills",
    "apps.knowledge",
    "apps.files",
    "apps.agents",
    "apps.conversations",
    "apps.workflows",
    "apps.tasks",
    "apps.console",
    "django_htmx",
]

MIDDLEWARE = [
    "apps.core.middleware.RequestIdMiddleware",
    "apps.core.middleware.ApiHtmlErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "apps.core.middleware.StaticFilesMiddleware",  # WhiteNoise, async-capable
    "apps.core.middleware.ApiBodyLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "apps.core.middleware.RateLimitHeadersMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.console.context_processors.console",
            ],
        },
    },
]

# --- The operator's admin (django-unfold; apps/console/admin_site.py) ---------------------
UNFOLD = {
    "SITE_TITLE": "Agent Platform admin",
    "SITE_HEADER": "Agent Platform admin",
    "SITE_SUBHEADER": "Operator console",
    "SITE_URL": "/",
    "SITE_SYMBOL": "smart_toy",
    "SHOW_HISTORY": True,
    "SHOW_VIEW_ON_SITE": True,
    "DASHBOARD_CALLBACK": "apps.console.admin_site.dashboard_callback",
    "SIDEBAR": {
        "show_search": True,
        "show_all_applications": True,
        "navigation": "apps.console.admin_site.sidebar_navigation",
    },
}

# --- Database -------------------------------------------------------------------------
# SQLite in the embedded profile: WAL so readers never block the writer, a busy timeout
# and IMMEDIATE transactions so concurrent writers queue instead of failing.
SQLITE_OPTIONS = {
    "timeout": 20,
    "transaction_mode": "IMMEDIATE",
    "init_command": (
        "PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL;PRAGMA busy_timeout=20000;"
        "PRAGMA foreign_keys=ON;"
    ),
}
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update(SQLITE_OPTIONS)
    # Kept open by the threads that serve requests (apps/core/asgi.py): opening a SQLite
    # connection is most of a small request's cost.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=None)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
elif env.bool("DB_POOL", default=True):
    # A connection pool per process (psycopg_pool). Persistent connections do not suit
    # ASGI: a request's sync code runs in a thread made for that request, so its
    # connection is never reused and stays open until garbage collection finds it.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DB_POOL_MIN_SIZE", default=2),
        "max_size": env.int("DB_POOL_MAX_SIZE", default=20),
        "timeout": env.float("DB_POOL_TIMEOUT", default=10.0),
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Threads kept to run requests' synchronous code, one request at a time each (more
# requests at once get a thread of their own, as with Django's handler).
REQUEST_THREADS = env.int("REQUEST_THREADS", default=16)
DATABASE_IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis-backed services (production profile) or in-process ones (embedded) ---------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_DIR = VAR_DIR / "celery-broker"
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR),
        "data_folder_out": str(CELERY_BROKER_DIR),
        "control_folder": str(VAR_DIR / "celery-control"),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=15 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=14 * 60)
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_EAGER_PROPAGATES = True

# --- Auth -----------------------------------------------------------------------------
AUTH_USER_MODEL = "users.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="mandatory")
ACCOUNT_UNIQUE_EMAIL = True
HEADLESS_ONLY = False

OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
OAUTH2_PROVIDER_ACCESS_TOKEN_MODEL = "oauth2_provider.AccessToken"  # noqa: S105
OAUTH2_PROVIDER_REFRESH_TOKEN_MODEL = "oauth2_provider.RefreshToken"  # noqa: S105
OAUTH2_PROVIDER_GRANT_MODEL = "oauth2_provider.Grant"
OAUTH2_PROVIDER_ID_TOKEN_MODEL = "oauth2_provider.IDToken"  # noqa: S105

# --- Email ----------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="platform@localhost")

# --- I18N / static --------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# The console's browser library (htmx) is the copy the pinned django-htmx wheel ships.
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "/media/"

# --- File storage (apps/files; docs/deploy.md) -------------------------------------------
# "files" holds uploads, attachments and agent workspace files. FILES_STORAGE=local (the
# default: FILES_ROOT on this machine) or s3 (any S3-compatible object store through
# django-storages: AWS S3, MinIO, Ceph, R2 ...).
FILES_STORAGE = env.str("FILES_STORAGE", default="local")
FILES_ROOT = Path(env.str("FILES_ROOT", default=str(VAR_DIR / "files")))


def files_storage_config(kind: str) -> dict[str, Any]:
    """The STORAGES entry of the "files" storage for FILES_STORAGE=`kind`."""
    if kind == "s3":
        return {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": env.str("FILES_S3_BUCKET"),
                "endpoint_url": env.str("FILES_S3_ENDPOINT_URL", default="") or None,
                "region_name": env.str("FILES_S3_REGION", default="") or None,
                "access_key": env.str("FILES_S3_ACCESS_KEY_ID", default="") or None,
                "secret_key": env.str("FILES_S3_SECRET_ACCESS_KEY", default="") or None,
                "location": env.str("FILES_S3_PREFIX", default=""),
                "default_acl": None,
                "querystring_auth": True,
                "file_overwrite": False,
            },
        }
    if kind != "local":
        raise ImproperlyConfigured(f"FILES_STORAGE is 'local' or 's3', not {kind!r}.")
    return {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(FILES_ROOT), "base_url": None},
    }


STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "files": files_storage_config(FILES_STORAGE),
}

# --- Request limits -------------------------------------------------------------------
# Bodies larger than this are refused with 413 before they are read (uploads have their
# own, larger limit where an endpoint takes files).
API_MAX_BODY_BYTES = env.int("API_MAX_BODY_BYTES", default=1024 * 1024)
API_MAX_UPLOAD_BYTES = env.int("API_MAX_UPLOAD_BYTES", default=50 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = API_MAX_BODY_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

# --- REST framework and the API contract ---------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.users.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["apps.users.permissions.WorkspaceActor"],
    "DEFAULT_RENDERER_CLASSES": ["apps.core.api.renderers.EnvelopeJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["apps.core.api.throttling.CredentialRateThrottle"],
    "DEFAULT_PAGINATION_CLASS": "apps.core.api.pagination.CursorPagination",
    "EXCEPTION_HANDLER": "apps.core.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "apps.core.api.schema.EnvelopeAutoSchema",
    "DEFAULT_VERSIONING_CLASS": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Requests per window for each kind of credential; "N/s", "N/min", "N/hour" or "N/day".
RATE_LIMITS = {
    "anon": env.str("RATE_LIMIT_ANON", default="60/min"),
    "user": env.str("RATE_LIMIT_USER", default="600/min"),
    "api_key": env.str("RATE_LIMIT_API_KEY", default="600/min"),
    "oauth2": env.str("RATE_LIMIT_OAUTH2", default="600/min"),
    "trigger": env.str("RATE_LIMIT_TRIGGER", default="60/min"),
    # Dynamic OAuth2 client registrations (POST /oauth/register/), per client address.
    "oauth_register": env.str("RATE_LIMIT_OAUTH_REGISTER", default="20/hour"),
}
IDEMPOTENCY_TTL_SECONDS = 24 * 60 * 60

SPECTACULAR_SETTINGS: dict[str, Any] = {
    "TITLE": "Agent Platform API",
    "DESCRIPTION": (
        "REST API of the agent platform. Every success is `{data, meta}`, every error "
        "`{error: {code, message, details}, meta}`. See docs/api.md."
    ),
    "VERSION": PLATFORM_VERSION,
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {},
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums"],
    # apps/core/api/converters.py: `<id:...>` path ids are 64-bit database integers.
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
    },
}

# --- Outbound requests ----------------------------------------------------------------
# Hosts an operator allows the server to reach even though they resolve to private
# addresses (a local vLLM or Ollama, say). Also editable at runtime in system settings.
OUTBOUND_ALLOWED_HOSTS: list[str] = env.list("OUTBOUND_ALLOWED_HOSTS", default=[])

# --- Model providers ------------------------------------------------------------------
# Backoff of retried model calls (429/5xx/connection errors): base * 2^(n-1), capped.
PROVIDER_RETRY_BASE_DELAY = env.float("PROVIDER_RETRY_BASE_DELAY", default=0.5)
PROVIDER_RETRY_MAX_DELAY = env.float("PROVIDER_RETRY_MAX_DELAY", default=8.0)
if isinstance(_enum_overrides := SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"], dict):
    _enum_overrides.update(
        {
            "ProviderKindEnum": "apps.providers.choices.ProviderKind",
            "ModelKindEnum": "apps.providers.choices.ModelKind",
            "ModelCapabilityEnum": "apps.providers.choices.Capability",
            "WorkflowRunStatusEnum": "apps.workflows.choices.RunStatus",
            "WorkflowRunSourceEnum": "apps.workflows.choices.RunSource",
            "RemoteAgentAuthEnum": "apps.skills.choices.RemoteAgentAuth",
        }
    )

# --- Logging --------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_JSON = env.bool("LOG_JSON", default=False)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "apps.core.logging.RequestIdFilter"}},
    "formatters": {
        "plain": {
            "format": "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s",
        },
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if LOG_JSON else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# Features this installation offers, reported by /api/v1/system/info.
PLATFORM_FEATURES: list[str] = ["workspaces", "api_keys", "oauth2"]

# How often beat sweeps stale jobs (apps.core.jobs): a job whose worker died ends (or is
# retried) at most its kind's stale_after + this interval after its last heartbeat.
JOBS_SWEEP_INTERVAL_SECONDS = env.int("JOBS_SWEEP_INTERVAL_SECONDS", default=60)

CELERY_BEAT_SCHEDULE = {
    "core.purge_idempotency_records": {
        "task": "core.purge_idempotency_records",
        "schedule": 60 * 60,
    },
    # One sweep for every job kind registered with apps.core.jobs (docs/architecture.md).
    "core.sweep_stale_jobs": {
        "task": "core.sweep_stale_jobs",
        "schedule": JOBS_SWEEP_INTERVAL_SECONDS,
    },
    "tasks.tick": {"task": "tasks.tick", "schedule": 15},
    "users.purge_unused_dynamic_clients": {
        "task": "users.purge_unused_dynamic_clients",
        "schedule": 60 * 60,
    },
}

# --- Scheduled tasks, webhooks, triggers (apps.tasks; see docs/tasks.md) --------------
# A due time later than this when the scheduler sees it counts as missed (missed_policy).
TASKS_MISSED_GRACE_SECONDS = env.int("TASKS_MISSED_GRACE_SECONDS", default=300)
# A running execution with no run and no heartbeat for this long lost its worker.
TASKS_STALE_SECONDS = env.int("TASKS_STALE_SECONDS", default=120)
# Webhook deliveries: per-attempt timeout, response bytes kept, and the waits between
# attempts (seconds; 8 attempts over about 27 hours), after which the endpoint is disabled.
# Inbound triggers: body size, per-trigger rate, and how long a caller may wait.
TRIGGER_MAX_BODY_BYTES = env.int("TRIGGER_MAX_BODY_BYTES", default=64 * 1024)
TRIGGER_MAX_WAIT_SECONDS = env.int("TRIGGER_MAX_WAIT_SECONDS", default=60)
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
WEBHOOK_RESPONSE_MAX_BYTES = 64 * 1024
WEBHOOK_RETRY_SCHEDULE: list[int] = [
    int(s)
    for s in env.list(
        "WEBHOOK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"]
    )
]

# django-oauth-toolkit: the OAuth 2.0 Security BCP (RFC 9700) behaviours, all on.
OAUTH2_PROVIDER = {
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "PKCE_REQUIRED": True,
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
}

# --- Identity (apps.users; see docs/auth.md) ------------------------------------------
from apps.users.keys import rsa_private_key_pem  # noqa: E402
from apps.users.scopes import OAUTH2_SCOPES  # noqa: E402

REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] = [
    "apps.users.authentication.ApiKeyAuthentication",
    "apps.users.authentication.OAuth2Authentication",
    "apps.users.authentication.AppJwtAuthentication",
    "apps.users.authentication.SessionAuthentication",
]
OAUTH2_PROVIDER.update(
    {
        "OAUTH2_VALIDATOR_CLASS": "apps.users.oauth.PlatformOAuth2Validator",
        "OIDC_ENABLED": True,
        "OIDC_RSA_PRIVATE_KEY": rsa_private_key_pem(
            env_value=env.str("OIDC_RSA_PRIVATE_KEY", default=""), path=VAR_DIR / "oidc-rsa.pem"
        ),
        "OIDC_ISS_ENDPOINT": env.str("OIDC_ISSUER", default=""),
        "SCOPES": OAUTH2_SCOPES,
        "DEFAULT_SCOPES": ["read"],
        "AUTHORIZATION_CODE_EXPIRE_SECONDS": 60,
        "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("OAUTH2_ACCESS_TOKEN_SECONDS", default=3600),
        "REFRESH_TOKEN_EXPIRE_SECONDS": env.int(
            "OAUTH2_REFRESH_TOKEN_SECONDS", default=30 * 24 * 3600
        ),
        "ID_TOKEN_EXPIRE_SECONDS": 3600,
        "ROTATE_REFRESH_TOKEN": True,
        "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
        "REQUEST_APPROVAL_PROMPT": "force",
        "PKCE_REQUIRED": True,
        "ALLOW_URI_WILDCARDS": False,
        "OAUTH2_RESPONSE_TYPES_SUPPORTED": ["code"],
        "OIDC_RESPONSE_TYPES_SUPPORTED": ["code"],
        "OAUTH2_GRANT_TYPES_SUPPORTED": [
            "authorization_code",
            "client_credentials",
            "refresh_token",
        ],
        # Public clients (PKCE, no secret) authenticate with "none" at the token endpoint.
        "OAUTH2_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        # RFC 7591 dynamic client registration at /oauth/register/ (apps.users.views):
        # on by default so MCP clients connect without a pre-registered application.
        "DCR_ENABLED": env.bool("OAUTH2_DYNAMIC_REGISTRATION", default=True),
        "OAUTH2_PROTECTED_RESOURCE_NAME": "Agent Platform",
        "OAUTH2_PROTECTED_RESOURCE_DOCUMENTATION": env.str("OAUTH2_RESOURCE_DOCS_URL", default=""),
    }
)
# Dynamically registered clients: https redirect hosts the operator trusts (none by
# default: loopback and private-use schemes only), how long a client may wait for its
# first token before it is deleted, and how many may wait at once.
OAUTH2_DYNAMIC_REGISTRATION_HTTPS_HOSTS = env.list(
    "OAUTH2_DYNAMIC_REGISTRATION_HTTPS_HOSTS", default=[]
)
OAUTH2_DYNAMIC_CLIENT_UNUSED_SECONDS = env.int(
    "OAUTH2_DYNAMIC_CLIENT_UNUSED_SECONDS", default=24 * 3600
)
OAUTH2_DYNAMIC_CLIENTS_PENDING_MAX = env.int("OAUTH2_DYNAMIC_CLIENTS_PENDING_MAX", default=1000)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["WorkspaceRoleEnum"] = "apps.users.choices.Role"
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "TaskExecutionStatusEnum": "apps.tasks.choices.ExecutionStatus",
        "WebhookDeliveryStatusEnum": "apps.tasks.choices.DeliveryStatus",
    }
)
ACCOUNT_ADAPTER = "apps.users.adapters.AccountAdapter"
SOCIALACCOUNT_ADAPTER = "apps.users.adapters.SocialAccountAdapter"
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_VERIFICATION_BY_CODE_ENABLED = True
ACCOUNT_PASSWORD_RESET_BY_CODE_ENABLED = True
# Brute-force limits (MFA codes share "login_failed", keyed per user).
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/10s/key",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "manage_email": "10/m/user",
    "reauthenticate": "10/m/user",
    "request_login_code": "20/m/ip,3/m/key",
}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Agent Platform")
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
HEADLESS_SERVE_SPECIFICATION = True
HEADLESS_TOKEN_STRATEGY = "allauth.headless.tokens.strategies.jwt.JWTTokenStrategy"  # noqa: S105
HEADLESS_JWT_PRIVATE_KEY = rsa_private_key_pem(
    env_value=env.str("HEADLESS_JWT_PRIVATE_KEY", default=""), path=VAR_DIR / "jwt-rsa.pem"
)
HEADLESS_JWT_ACCESS_TOKEN_EXPIRES_IN = 300
HEADLESS_JWT_REFRESH_TOKEN_EXPIRES_IN = 14 * 24 * 3600
HEADLESS_JWT_STATEFUL_VALIDATION_ENABLED = True

# Fernet keys for secrets at rest (provider keys, MCP headers, webhook secrets), newest
# first. Unset: one key derived from SECRET_KEY (fine for the embedded profile only).
SECRET_ENCRYPTION_KEYS: list[str] = env.list("SECRET_ENCRYPTION_KEYS", default=[])

# --- Tools, skills and MCP (apps.skills) ----------------------------------------------
# Skill ZIP limits: entries, total uncompressed bytes, bytes per file, compression ratio.
SKILL_MAX_FILES = env.int("SKILL_MAX_FILES", default=500)
SKILL_MAX_TOTAL_BYTES = env.int("SKILL_MAX_TOTAL_BYTES", default=20 * 1024 * 1024)
SKILL_MAX_FILE_BYTES = env.int("SKILL_MAX_FILE_BYTES", default=10 * 1024 * 1024)
SKILL_MAX_COMPRESSION_RATIO = env.int("SKILL_MAX_COMPRESSION_RATIO", default=100)
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"].update(
    {
        "ToolSourceEnum": "apps.skills.choices.ToolSource",
        "SkillSourceEnum": "apps.skills.choices.SkillSource",
        "McpAuthEnum": "apps.skills.choices.McpAuth",
        "OpenApiAuthEnum": "apps.skills.choices.OpenApiAuth",
    }
)
# --- Knowledge bases (limits: apps/knowledge/limits.py, each a setting of that name) --
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"]["KnowledgeSearchModeEnum"] = (
    "apps.knowledge.choices.SearchMode"
)

# The code sandbox (docs/sandbox.md): empty runs executions in a thread of the process that
# runs the agent; a queue name ("sandbox") sends them to Celery workers consuming it.
SANDBOX_CELERY_QUEUE = env.str("SANDBOX_CELERY_QUEUE", default="")
# As root, each execution runs as a host uid/gid of its own, one of SANDBOX_HOST_UID_COUNT
# ids from SANDBOX_HOST_UID_BASE (a range no account uses), held by an flock on a file in
# SANDBOX_UID_LOCK_DIR (empty: <tmp>/sandbox-uids; the same for every process of a host).
SANDBOX_HOST_UID_BASE = env.int("SANDBOX_HOST_UID_BASE", default=2_000_000_000)
SANDBOX_HOST_UID_COUNT = env.int("SANDBOX_HOST_UID_COUNT", default=4096)
SANDBOX_UID_LOCK_DIR = env.str("SANDBOX_UID_LOCK_DIR", default="")
