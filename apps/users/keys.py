"""Signing keys for OIDC ID tokens and headless JWTs, loaded by the settings.

A key comes from its environment variable (PEM); otherwise one is generated into the
`var/` directory on first start and reused. Several servers must share the key: set the
variables in production. Never commit a key.
"""

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def rsa_private_key_pem(*, env_value: str, path: Path) -> str:
    """The PEM in `env_value`, else the one stored at `path` (generated if missing)."""
    if env_value.strip():
        return env_value.replace("\\n", "\n")
    if not path.exists():
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(pem)
        try:
            os.link(tmp, path)  # atomic "create if absent": a concurrent start keeps its key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text()
