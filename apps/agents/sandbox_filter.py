"""The sandbox's seccomp-bpf filter (docs/adr/0001-code-sandbox.md, "System calls").

A deny list on top of the namespaces: the system calls below are refused with EPERM (or
ENOSYS for clone3, so that glibc falls back to clone, whose flags the filter can read) and
everything else is allowed. They are the kernel's most exposed surface for code that
already has no capabilities: debugging other processes, new namespaces (a nested user
namespace would hand the code capabilities over fresh mount and network namespaces),
keyrings, BPF, perf, userfaultfd, io_uring, modules, mounts, swap, reboot.

libseccomp (through the `pyseccomp` ctypes binding) compiles the rules into a BPF program
for the machine's native architecture only: a system call made through another ABI (i386
`int 0x80` or x32 on x86_64, arm32 on aarch64) kills the process, since a deny list keyed
on native syscall numbers says nothing about another ABI's numbers. bwrap loads the
program (`--seccomp FD`) just before it starts the sandboxed Python, after it has set up
the namespaces itself.
"""

import errno
import functools
import os

try:
    import pyseccomp
except (ImportError, RuntimeError):  # pragma: no cover - no libseccomp.so.2 on the host
    pyseccomp = None

# Refused with EPERM whatever their arguments. Names the running kernel's architecture
# does not have (e.g. the legacy ones on aarch64) are skipped by libseccomp.
DENIED = (
    # other processes' memory and registers
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # namespaces and the filesystem tree
    "unshare",
    "setns",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "open_tree",
    "move_mount",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    # kernel keyrings
    "keyctl",
    "add_key",
    "request_key",
    # BPF, perf and faulting tricks often used in kernel exploits
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    # the machine itself
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "syslog",
    "quotactl",
    "lookup_dcookie",
    "uselib",
    "ustat",
    "sysfs",
    "_sysctl",
    "vhangup",
    "iopl",
    "ioperm",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
)

# clone(2) flags that create a namespace: clone with any of them is refused.
CLONE_NAMESPACE_FLAGS = (
    0x00000080,  # CLONE_NEWTIME
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)

# personality(2): PER_LINUX (0), PER_LINUX32 (0x8) and UNAME26 (0x20000) and their
# combinations stay allowed; any other bit (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC,
# MMAP_PAGE_ZERO, other execution domains, and the 0xffffffff query) is refused.
# libseccomp takes one comparison per argument in a rule, so "any bit outside
# 0x20008" is one rule per low bit plus one for everything above bit 17.
PERSONALITY_ALLOWED_BITS = 0x20008


class FilterUnavailable(RuntimeError):
    """libseccomp is not installed on the host."""


@functools.cache
def program() -> bytes:
    """The filter as a BPF program for the native architecture (what `bwrap --seccomp`
    reads). Raises FilterUnavailable without libseccomp. Built once per process."""
    if pyseccomp is None:
        raise FilterUnavailable(
            "libseccomp is not installed (Debian: libseccomp2); the sandbox refuses to "
            "run without its system call filter."
        )
    sc = pyseccomp
    rules = sc.SyscallFilter(sc.ALLOW)
    # Only the native ABI (libseccomp's default): anything else is killed outright.
    rules.set_attr(sc.Attr.ACT_BADARCH, sc.KILL_PROCESS)
    deny = sc.ERRNO(errno.EPERM)
    for name in DENIED:
        _add(rules, deny, name)
    for flag in CLONE_NAMESPACE_FLAGS:
        _add(rules, deny, "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    # clone3 passes its flags in memory the filter cannot read: ENOSYS makes glibc (and
    # anything else written for older kernels) fall back to clone, which is checked.
    _add(rules, sc.ERRNO(errno.ENOSYS), "clone3")
    for bit in range(18):
        if not PERSONALITY_ALLOWED_BITS & (1 << bit):
            _add(rules, deny, "personality", sc.Arg(0, sc.MASKED_EQ, 1 << bit, 1 << bit))
    _add(rules, deny, "personality", sc.Arg(0, sc.GE, 1 << 18))
    fd = os.memfd_create("sandbox-seccomp-build", os.MFD_CLOEXEC)
    try:
        rules.export_bpf(_FileNo(fd))
        size = os.lseek(fd, 0, os.SEEK_END)
        return os.pread(fd, size, 0)
    finally:
        os.close(fd)


class _FileNo:
    """What pyseccomp's export_bpf wants of a file: its descriptor."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def _add(rules: "pyseccomp.SyscallFilter", action: int, name: str, *args: object) -> None:
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name)
    if number == -1:  # __NR_SCMP_ERROR: not a system call libseccomp knows
        return
    rules.add_rule(action, number, *args)


def program_fd() -> int:
    """A new file descriptor (a memfd at position 0) holding `program()`, for one bwrap
    call, which reads it to its end. The caller closes it."""
    data = program()
    fd = os.memfd_create("sandbox-seccomp", os.MFD_CLOEXEC)
    try:
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
    except OSError:
        os.close(fd)
        raise
    return fd
