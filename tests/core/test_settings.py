"""The production settings refuse an unsafe configuration and pass `check --deploy`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET = "p9Xk2-production-secret-0123456789-abcdefghijklmnopqrstuv"


def run_prod(env_overrides: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "ALLOWED_HOSTS"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.prod", **env_overrides})
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"ALLOWED_HOSTS": "example.com"}, "SECRET_KEY"),
        (
            {"SECRET_KEY": "insecure-dev-key-change-me", "ALLOWED_HOSTS": "example.com"},
            "SECRET_KEY",
        ),
        ({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "example.com", "DEBUG": "true"}, "DEBUG"),
        ({"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS"),
    ],
)
def test_prod_refuses_unsafe_configuration(overrides, reason):
    result = run_prod(overrides, "check")
    assert result.returncode != 0
    assert "Refusing to start in production" in result.stderr
    assert reason in result.stderr


def test_prod_passes_check_deploy():
    result = run_prod(
        {"SECRET_KEY": GOOD_SECRET, "ALLOWED_HOSTS": "example.com"},
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dev_settings_pass_system_checks():
    """`make run` uses these settings: a broken combination must fail here, not there."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.dev"}
    env.pop("DATABASE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
