"""Test settings: the embedded profile unless DATABASE_URL / REDIS_URL select production."""

from .base import *
from .base import env, files_storage_config

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production"  # noqa: S105
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # tests/files/conftest.py points it at a per-test directory or the S3 test server.
    "files": files_storage_config("local"),
}
ALLOWED_HOSTS = ["*"]

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    import os

    # A file, not SQLite's in-memory default, so that worker subprocesses started by a
    # test (a killed Celery worker, a second server process) see the same test database.
    # One file per test process: concurrent test runs never share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{os.getpid()}.sqlite3")}

# The browser tests load the console's CSS and JS from the live server without a
# collectstatic step: WhiteNoise serves them from the finders.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
