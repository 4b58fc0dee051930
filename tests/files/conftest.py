"""Fixtures of the files tests: the "files" storage on the local file system or on a real
S3-compatible server (moto's server mode on 127.0.0.1, started once per session), and
sample files."""

import struct
import uuid
import zlib
from pathlib import Path

import boto3
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from moto.server import ThreadedMotoServer

from apps.files.models import File
from tests.conversations.conftest import chat_agent, http, live  # noqa: F401 (fixtures)


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible HTTP server (moto) on a free loopback port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


class StoredKeys:
    """What the "files" storage holds, read from the storage itself (not from rows)."""

    def __init__(self, kind: str, root: Path | None = None, s3=None, bucket: str = ""):
        self.kind, self.root, self.s3, self.bucket = kind, root, s3, bucket

    def keys(self) -> list[str]:
        if self.kind == "local":
            assert self.root is not None
            return sorted(
                str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file()
            )
        listing = self.s3.list_objects_v2(Bucket=self.bucket)
        return sorted(item["Key"] for item in listing.get("Contents", []))


@pytest.fixture(params=["local", "s3"])
def storage(request, settings, tmp_path):
    """The "files" storage, once on the file system and once on the S3 server (a fresh
    bucket per test); `.keys()` lists what it holds."""
    stores = dict(settings.STORAGES)
    if request.param == "local":
        root = tmp_path / "files"
        stores["files"] = {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        }
        settings.STORAGES = stores
        return StoredKeys("local", root=root)
    endpoint = request.getfixturevalue("s3_server")
    bucket = f"files-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    stores["files"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "access_key": "testing",
            "secret_key": "testing",
            "region_name": "us-east-1",
            "default_acl": None,
            "file_overwrite": False,
        },
    }
    settings.STORAGES = stores
    return StoredKeys("s3", s3=s3, bucket=bucket)


@pytest.fixture
def local_storage(settings, tmp_path):
    """The "files" storage on the file system only (tests that are not about storage)."""
    root = tmp_path / "files"
    settings.STORAGES = {
        **settings.STORAGES,
        "files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(root)},
        },
    }
    return StoredKeys("local", root=root)


def make_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG (every byte made here)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def upload(client, name: str, data: bytes, content_type: str = "application/octet-stream"):
    """POST /api/v1/files with one file (an APIClient or an httpx client)."""
    if hasattr(client, "force_authenticate"):
        return client.post(
            "/api/v1/files",
            {"file": SimpleUploadedFile(name, data, content_type=content_type)},
            format="multipart",
        )
    return client.post("/api/v1/files", files={"file": (name, data, content_type)})


def rows() -> int:
    return File.objects.count()
