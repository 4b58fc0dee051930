"""Secrets at rest: Fernet encryption with key rotation (MultiFernet).

Keys come from SECRET_ENCRYPTION_KEYS (comma-separated Fernet keys, newest first). With
none set, one key is derived from SECRET_KEY so the embedded profile works out of the box;
production should set its own. Rotation: put the new key first, run
`manage.py rotate_secrets` (re-encrypts every stored secret), then drop the old key.
"""

import base64
import hashlib
from functools import cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models


class SecretDecryptionError(Exception):
    """A stored secret could not be decrypted with any configured key."""


@cache
def _fernet() -> MultiFernet:
    keys: list[str] = [k for k in getattr(settings, "SECRET_ENCRYPTION_KEYS", []) if k]
    if not keys:
        derived = hashlib.sha256(f"secret-encryption:{settings.SECRET_KEY}".encode()).digest()
        keys = [base64.urlsafe_b64encode(derived).decode()]
    return MultiFernet([Fernet(k.encode()) for k in keys])


def encrypt_secret(plaintext: str) -> str:
    """Encrypt with the newest key."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    """Decrypt with any configured key. Raises SecretDecryptionError (never shows the value)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretDecryptionError("stored secret cannot be decrypted with current keys") from exc


def rotate_secret(token: str) -> str:
    """Re-encrypt a stored token with the newest key."""
    return _fernet().rotate(token.encode()).decode()


def mask_secret(plaintext: str) -> str:
    """What the API may show of a secret: its last four characters at most."""
    return f"…{plaintext[-4:]}" if len(plaintext) >= 12 else "…"


class EncryptedTextField(models.TextField):
    """A text column stored encrypted. Read it only in services that need the plaintext;
    serializers must never expose it (show `mask_secret` instead)."""

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> str | None:
        if value is None or value == "":
            return value  # type: ignore[no-any-return]
        return decrypt_secret(value)

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return encrypt_secret(str(value))
