"""The code sandbox itself (apps.agents.sandbox): real code in real namespaces. Each
hostile case ends with a clear status and error, and the next execution works."""

import ast
import os
import pwd
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from apps.agents import sandbox
from apps.agents.sandbox import HostIds, SandboxLimits, SandboxUnavailable, run_python

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


def test_the_network_is_unreachable_and_the_canary_records_no_hit(canary):
    port = canary.server_address[1]
    # The canary answers the host: the assertions below could fail.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/from-host", timeout=5) as reply:
        assert reply.read() == b"canary"
    assert canary.hits == ["/from-host"]
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
    assert canary.hits == ["/from-host"]
    result = run_python(
        f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)",
        limits=LIMITS,
    )
    assert result.status == "error"
    assert result.error.startswith("ConnectionRefusedError"), result.error
    assert canary.hits == ["/from-host"]


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


# --- one host uid per execution (as root) ----------------------------------------------

as_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="as a normal user every execution maps to the platform's uid"
)

# Holds max_processes - 1 sleeping children for 8 s, counting the forks refused.
HOLD_PROCESSES = """
import os, time
made = refused = 0
deadline = time.time() + 8
while time.time() < deadline:
    try:
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        made += 1
    except BlockingIOError:
        refused += 1
        time.sleep(0.05)
(made, refused, open('/proc/self/uid_map').read().split())
"""

FORK_FOUR = """
import os, time
pids = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        time.sleep(0.5)  # all four alive at once
        os._exit(0)
    pids.append(pid)
[os.waitpid(pid, 0)[1] for pid in pids] + open('/proc/self/uid_map').read().split()
"""


@as_root
def test_concurrent_executions_get_their_own_host_uid_and_a_fork_bomb_starves_only_itself(
    tmp_path,
):
    ids = HostIds(base=2_000_100_000, count=8, lock_dir=str(tmp_path))
    limits = SandboxLimits(max_processes=16, wall_seconds=20)
    outcome = {}

    def bomb():
        outcome["bomb"] = run_python(HOLD_PROCESSES, limits=limits, host_ids=ids)

    thread = threading.Thread(target=bomb)
    thread.start()
    time.sleep(3)  # the bomb holds all the processes it may have by now
    other = run_python(FORK_FOUR, limits=limits, host_ids=ids)
    thread.join()
    bomb_result = outcome["bomb"]
    assert bomb_result.status == "ok", bomb_result
    made, refused, bomb_map = ast.literal_eval(bomb_result.result)
    assert refused > 0 and made < 16  # it did hit its own limit
    assert other.status == "ok", other
    other_value = ast.literal_eval(other.result)
    assert other_value[:4] == [0, 0, 0, 0]  # four children forked and exited cleanly
    # Inside both are 65534; on the host, the first two ids of the range, one each.
    assert (bomb_map[0], other_value[4]) == ("65534", "65534")
    assert sorted([bomb_map[1], other_value[5]]) == ["2000100000", "2000100001"]


_TAKE_UID = """
import sys
from apps.agents.sandbox import HostIds, SandboxUnavailable, _HostUid
try:
    ids = HostIds(base=int(sys.argv[1]), count=int(sys.argv[2]), lock_dir=sys.argv[3])
    with _HostUid(ids) as held:
        print(held.uid)
except SandboxUnavailable as exc:
    print("unavailable:", exc)
"""


def _take_uid_elsewhere(base: int, count: int, lock_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _TAKE_UID, str(base), str(count), str(lock_dir)],
        cwd=settings.BASE_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@as_root
def test_a_host_uid_is_held_by_one_execution_at_a_time_across_processes(tmp_path):
    base = 2_000_200_000
    with sandbox._HostUid(HostIds(base=base, count=2, lock_dir=str(tmp_path))) as held:
        assert held.uid == base
        assert _take_uid_elsewhere(base, 2, tmp_path) == str(base + 1)
        assert _take_uid_elsewhere(base, 1, tmp_path) == (
            "unavailable: All 1 sandbox uids are in use: too many executions at once."
        )
        with pytest.raises(SandboxUnavailable):
            run_python("1", host_ids=HostIds(base=base, count=1, lock_dir=str(tmp_path)))
    assert _take_uid_elsewhere(base, 1, tmp_path) == str(base)


@as_root
def test_a_lock_directory_others_can_write_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(SandboxUnavailable, match="must be a directory owned by root"):
        run_python("1", host_ids=HostIds(base=2_000_400_000, count=1, lock_dir=str(shared)))
    assert list(shared.iterdir()) == []


@as_root
def test_an_existing_account_is_never_a_sandbox_uid(tmp_path):
    nobody = pwd.getpwnam("nobody").pw_uid
    try:
        pwd.getpwuid(nobody + 1)
        pytest.skip("the uid after nobody's is an account here")
    except KeyError:
        pass
    with sandbox._HostUid(HostIds(base=nobody, count=2, lock_dir=str(tmp_path))) as held:
        assert held.uid == nobody + 1


@as_root
def test_releasing_a_host_uid_kills_what_still_runs_as_it(tmp_path):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("util-linux setpriv is not installed")
    with sandbox._HostUid(HostIds(base=2_000_300_000, count=1, lock_dir=str(tmp_path))) as held:
        straggler = subprocess.Popen(
            [setpriv, f"--reuid={held.uid}", f"--regid={held.uid}", "--clear-groups", "sleep", "60"]
        )
        time.sleep(0.2)
        assert straggler.poll() is None
    assert straggler.wait(timeout=5) == -9


# --- the seccomp filter -------------------------------------------------------------

SYSCALLS = r"""
import ctypes, os, subprocess, threading
import numpy
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def call(*args):
    ctypes.set_errno(0)
    return (libc.syscall(*[ctypes.c_long(a) for a in args]), ctypes.get_errno())

nr = NUMBERS
out = {
    "unshare_user": call(nr["unshare"], 0x10000000),
    "unshare_net": call(nr["unshare"], 0x40000000),
    "setns": call(nr["setns"], 0, 0),
    "clone_newuser": call(nr["clone"], 0x10000000 | 17, 0, 0, 0, 0),
    "clone3": call(nr["clone3"], 0, 0),
    "ptrace": call(nr["ptrace"], 0, 0, 0, 0),
    "process_vm_readv": call(nr["process_vm_readv"], 1, 0, 0, 0, 0, 0),
    "mount": (libc.mount(b"none", b"/tmp", b"tmpfs", 0, None), ctypes.get_errno()),
    "keyctl": call(nr["keyctl"], 0, -3, 0),
    "add_key": call(nr["add_key"], 0, 0, 0, 0, 0),
    "bpf": call(nr["bpf"], 0, 0, 0),
    "perf_event_open": call(nr["perf_event_open"], 0, 0, -1, -1, 0),
    "userfaultfd": call(nr["userfaultfd"], 0),
    "io_uring_setup": call(nr["io_uring_setup"], 1, 0),
    "personality_no_aslr": call(nr["personality"], 0x0040000),
    "personality_linux": call(nr["personality"], 0),
}
pid = os.fork()
if pid == 0:
    os._exit(7)
thread = threading.Thread(target=lambda: None)
thread.start()
thread.join()
out["fork"] = os.waitpid(pid, 0)[1] >> 8
out["subprocess"] = subprocess.run(["/bin/echo", "hi"], capture_output=True).stdout.decode()
out["numpy"] = float(numpy.linalg.det(numpy.array([[2.0, 0.0], [0.0, 3.0]])))
status = open("/proc/self/status").read().splitlines()
out["seccomp"] = [line.split()[1] for line in status if line.startswith("Seccomp")]
out
"""


def test_the_seccomp_filter_refuses_dangerous_system_calls_and_normal_code_runs():
    import pyseccomp

    names = [
        "unshare",
        "setns",
        "clone",
        "clone3",
        "ptrace",
        "process_vm_readv",
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "userfaultfd",
        "io_uring_setup",
        "personality",
    ]
    numbers = {name: pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) for name in names}
    result = run_python(SYSCALLS.replace("NUMBERS", repr(numbers)), limits=LIMITS)
    assert result.status == "ok", result
    out = ast.literal_eval(result.result)
    eperm, enosys = 1, 38
    refused = {name: value for name, value in out.items() if isinstance(value, tuple)}
    assert refused == {
        "unshare_user": (-1, eperm),
        "unshare_net": (-1, eperm),
        "setns": (-1, eperm),
        "clone_newuser": (-1, eperm),
        "clone3": (-1, enosys),
        "ptrace": (-1, eperm),
        "process_vm_readv": (-1, eperm),
        "mount": (-1, eperm),
        "keyctl": (-1, eperm),
        "add_key": (-1, eperm),
        "bpf": (-1, eperm),
        "perf_event_open": (-1, eperm),
        "userfaultfd": (-1, eperm),
        "io_uring_setup": (-1, eperm),
        "personality_no_aslr": (-1, eperm),
        "personality_linux": (0, 0),
    }
    assert out["fork"] == 7
    assert out["subprocess"] == "hi\n"
    assert out["numpy"] == 6.0
    assert out["seccomp"] == ["2", "1"]  # filter mode, one filter


X32_GETPID = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("before", flush=True)
libc.syscall(ctypes.c_long(0x40000000 | 39))
print("survived")
"""

I386_GETPID = """
import ctypes, mmap
code = bytes([0xB8, 20, 0, 0, 0, 0xCD, 0x80, 0xC3])  # mov eax, 20 (getpid); int 0x80; ret
page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
page.write(code)
function = ctypes.CFUNCTYPE(ctypes.c_int)(ctypes.addressof(ctypes.c_char.from_buffer(page)))
print("before", flush=True)
function()
print("survived")
"""


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64's other ABIs")
@pytest.mark.parametrize("code", [X32_GETPID, I386_GETPID], ids=["x32", "i386"])
def test_a_system_call_through_another_abi_kills_the_code(code):
    result = run_python(code, limits=LIMITS)
    assert (result.status, result.stdout) == ("killed", "before\n"), result
    assert result.error == "Stopped: the code made a system call the sandbox forbids."
    still_fine()
