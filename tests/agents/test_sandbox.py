"""The code sandbox itself (apps.agents.sandbox): real code in real namespaces. Each
hostile case ends with a clear status and error, and the next execution works."""

import ast
import http.server
import os
import threading
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from apps.agents.sandbox import SandboxLimits, run_python

pytestmark = pytest.mark.slow

LIMITS = SandboxLimits(wall_seconds=20, cpu_seconds=3, memory_mb=256, output_bytes=10_000)


def still_fine():
    result = run_python("6 * 7", limits=LIMITS)
    assert (result.status, result.result) == ("ok", "42"), result


def test_a_computation_returns_stdout_and_the_last_expression():
    result = run_python(
        "import math, statistics\nprint('mean', statistics.mean([1, 2, 3, 4]))\nmath.factorial(20)",
        limits=LIMITS,
    )
    assert result.status == "ok", result
    assert result.stdout == "mean 2.5\n"
    assert result.result == "2432902008176640000"
    assert result.stderr == ""


def test_an_exception_is_an_error_with_its_traceback():
    result = run_python("x = 1\n1 / 0", limits=LIMITS)
    assert result.status == "error"
    assert result.error == "ZeroDivisionError: division by zero"
    assert 'File "<code>", line 2' in result.stderr
    assert "runner.py" not in result.stderr


def test_the_workspace_is_materialised_and_changes_come_back():
    result = run_python(
        "import os\ndata = open('in/data.csv').read()\nos.makedirs('out', exist_ok=True)\n"
        "open('out/total.txt', 'w').write(str(sum(int(x) for x in data.split(','))))\n"
        "os.remove('old.txt')\nsorted(os.listdir('.'))",
        files={"in/data.csv": b"1,2,3", "old.txt": b"bye"},
        limits=LIMITS,
    )
    assert result.status == "ok", result
    assert result.result == "['in', 'out']"
    assert result.files == {"out/total.txt": b"6"}
    assert result.deleted == ["old.txt"]


def test_a_timeout_is_stopped_at_the_wall_clock():
    result = run_python("import time\ntime.sleep(60)", limits=SandboxLimits(wall_seconds=2))
    assert result.status == "timeout"
    assert result.error == "Stopped: the code ran longer than the 2 s wall-clock limit."
    assert result.duration_ms < 10_000
    still_fine()


def test_a_busy_loop_is_stopped_by_the_cpu_or_wall_limit():
    result = run_python("while True: pass", limits=SandboxLimits(cpu_seconds=1, wall_seconds=8))
    # The CPU limit normally wins; on a loaded machine the wall clock may come first.
    assert result.status in ("cpu_limit", "timeout"), result
    assert result.error.startswith("Stopped: the code used more than 1 s of CPU time.") or (
        result.status == "timeout"
    )
    still_fine()


def test_a_memory_bomb_hits_the_memory_limit():
    result = run_python(
        "blocks = []\nwhile True:\n    blocks.append(bytearray(50 * 2**20))", limits=LIMITS
    )
    assert result.status == "memory_limit", result
    assert result.error == "Stopped: the code used more than 256 MB of memory."
    still_fine()


def test_a_fork_bomb_hits_the_process_limit():
    result = run_python(
        "import os, time\nwhile True:\n    if os.fork() == 0:\n        time.sleep(30)",
        limits=SandboxLimits(max_processes=16, wall_seconds=20),
    )
    assert result.status == "process_limit", result
    assert result.error == "The code tried to start more than 16 processes."
    assert result.duration_ms < 15_000  # the sleeping children died with the sandbox
    still_fine()


def test_infinite_output_is_cut_at_the_output_limit():
    result = run_python("while True:\n    print('spam' * 100)", limits=LIMITS)
    assert result.status == "output_limit"
    assert result.error == "Stopped: the code printed more than 10000 bytes."
    assert len(result.stdout) <= 10_000
    still_fine()


class _Canary(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):
        _Canary.hits.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"canary")

    def log_message(self, *args):
        pass


@pytest.fixture
def canary():
    _Canary.hits = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_the_network_is_unreachable_and_the_canary_records_no_hit(canary):
    port = canary.server_address[1]
    # The canary answers the host: the assertions below could fail.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/from-host", timeout=5) as reply:
        assert reply.read() == b"canary"
    assert _Canary.hits == ["/from-host"]
    code = (
        "import socket, urllib.request\nerrors = []\n"
        f"for url in ['http://127.0.0.1:{port}/sandbox', 'http://localhost:{port}/x',"
        " 'http://93.184.216.34/', 'http://pypi.org/']:\n"
        "    try:\n        urllib.request.urlopen(url, timeout=3)\n"
        "        errors.append('REACHED ' + url)\n"
        "    except Exception as exc:\n        errors.append(type(exc).__name__)\n"
        "errors"
    )
    result = run_python(code, limits=LIMITS)
    assert result.status == "ok", result
    assert "REACHED" not in result.result
    assert _Canary.hits == ["/from-host"]
    result = run_python(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)",
        limits=LIMITS,
    )
    assert result.status == "error"
    assert result.error.startswith("ConnectionRefusedError"), result.error
    assert _Canary.hits == ["/from-host"]


def test_the_platform_files_environment_and_database_are_invisible(monkeypatch):
    monkeypatch.setenv("SANDBOX_TEST_SECRET", "s3cr3t-value")
    base = Path(settings.BASE_DIR)
    database = str(settings.DATABASES["default"]["NAME"])
    targets = [
        str(base / "config" / "settings" / "base.py"),
        str(base / "manage.py"),
        str(Path(settings.VAR_DIR)),
        "/etc/passwd",
        "/proc/1/environ",
        f"/proc/{os.getpid()}/environ",
    ]
    if database.startswith("/"):
        targets.append(database)
    code = (
        f"import os\nfound = []\nfor path in {targets!r}:\n"
        "    try:\n        open(path, 'rb').read(100)\n        found.append(path)\n"
        "    except IsADirectoryError:\n        found.append(path)\n"
        "    except OSError:\n        pass\n"
        "(found, sorted(os.environ))"
    )
    result = run_python(code, limits=LIMITS)
    assert result.status == "ok", result
    found, names = ast.literal_eval(result.result)
    # /proc/1/environ is the sandbox's own init (empty environment), never the host's.
    assert [p for p in found if p != "/proc/1/environ"] == []
    assert "SANDBOX_TEST_SECRET" not in names
    assert "DJANGO_SETTINGS_MODULE" not in names
    assert "s3cr3t-value" not in result.stdout + result.result


def test_nothing_outside_the_workspace_is_writable(tmp_path):
    outside = tmp_path / "outside.txt"
    code = (
        "import os\nwritten = []\n"
        f"for path in ['/usr/evil', '/sandbox/runner.py', '/evil', '/etc/evil',"
        f" {str(outside)!r},"
        " '/proc/sys/kernel/randomize_va_space', '/sys/kernel/notes']:\n"
        "    try:\n        open(path, 'w').write('x')\n        written.append(path)\n"
        "    except OSError:\n        pass\n"
        "written"
    )
    result = run_python(code, limits=LIMITS)
    assert result.status == "ok", result
    assert result.result == "[]"
    assert not outside.exists()
    still_fine()


def test_the_skill_directory_is_read_only_and_scripts_run_from_it():
    skill = {
        "SKILL.md": b"---\nname: s\n---\n",
        "scripts/hello.py": b"import sys\n"
        b"print('hello', *sys.argv[1:])\nopen('made.txt', 'w').write('from skill')\n",
    }
    result = run_python(
        script="scripts/hello.py", args=["a", "b"], skill_files=skill, limits=LIMITS
    )
    assert result.status == "ok", result
    assert result.stdout == "hello a b\n"
    assert result.files == {"made.txt": b"from skill"}
    result = run_python(
        "open('/skill/scripts/hello.py', 'w').write('x')", skill_files=skill, limits=LIMITS
    )
    assert result.status == "error"
    assert "Read-only file system" in result.error


def test_a_matplotlib_chart_comes_back_as_a_png():
    pytest.importorskip("matplotlib")
    result = run_python(
        "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nplt.title('squares')",
        limits=SandboxLimits(wall_seconds=60, cpu_seconds=30),
    )
    assert result.status == "ok", result
    assert len(result.images) == 1
    assert result.images[0].startswith("figures/figure_")
    assert result.files[result.images[0]].startswith(b"\x89PNG\r\n\x1a\n")
