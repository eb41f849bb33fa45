"""The program that runs inside a sandbox and executes model-written code.

It is started as ``python -I -S sandbox_worker.py WORKDIR`` and imports nothing but the standard
library, so the sandbox needs no view of sc, the user's packages or their home.

Protocol, over stdin/stdout: frames of a 4-byte big-endian length and a UTF-8 JSON object.

- host -> worker ``{"op": "run", "id", "source", "entry", "args", "tools", "limits"}``
- job -> host ``{"op": "call", "id", "tool", "args"}``; host -> job ``{"op": "return", "value"}``
  or ``{"op": "error", "message"}``
- job -> host ``{"op": "result", "id", "ok", "value" | "error"}``
- worker -> host ``{"op": "done", "id", "status", "output"}``, always last.

Each job runs in a child forked from this (trusted) process. The child gets its own session,
resource limits (CPU, address space, file size, open files, no core dumps) and a seccomp filter
that forbids new processes, exec, sockets, ptrace and namespace/mount calls, then executes the
code. The worker never runs untrusted code itself, so a job can only ever damage its own child.

The job never holds the worker's stdin or stdout: it talks to the worker over two pipes of its
own, and the worker relays its ``call`` and ``result`` frames (stamped with the job's id) to the
host and the host's replies back. So a job cannot read the host's next job, cannot send ``done``
or frames for another job, and cannot leave half a frame on the host's channel. The worker is
not dumpable, so a job cannot reach into its memory or its file descriptors through /proc.
"""

import builtins
import contextlib
import ctypes
import json
import math
import os
import resource
import select
import shutil
import signal
import stat
import struct
import sys
import time
import traceback

HEADER = struct.Struct(">I")
MAX_INPUT = 64 * 1024 * 1024
PRELOADED = (
    "bisect", "collections", "copy", "datetime", "decimal", "fractions", "functools", "heapq",
    "itertools", "math", "operator", "random", "re", "statistics", "string", "typing",
)  # fmt: skip
CHANNEL_OUT = 3  # the job's channel to the worker (fd 0 brings the replies); 1 and 2 go to output
RELAYED = ("call", "result")  # what a job may send; the worker sends "done" itself


def read_frame(fd):
    """The next frame from ``fd``, decoded; None at the end of input."""
    raw = _read_raw(fd)
    return None if raw is None else json.loads(raw[HEADER.size :])


def _read_exact(fd, size):
    chunks, remaining = [], size
    while remaining:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def write_frame(fd, message):
    body = json.dumps(message, allow_nan=False).encode()
    data = HEADER.pack(len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


# --- JSON data -----------------------------------------------------------------------------


def json_problem(value: object, path: str) -> str | None:
    """Why ``value`` (called ``path``) is not JSON data, naming the first bad value by its path
    (``state["due"][0] is a datetime.date``); None when it is JSON data.

    json.dumps alone would fail without saying where, or quietly change the data (non-string
    keys become strings). Tuples pass: they are arrays. The host shares this check, so that a
    state, a tool result and a program's return value follow one rule with one kind of message.
    """
    try:
        return _problem(value, path, set())
    except RecursionError:
        return f"{path} is nested too deeply"


def _problem(value: object, path: str, open_ids: set[int]) -> str | None:
    if value is None or isinstance(value, (str, int)):  # bool is an int
        return None
    if isinstance(value, float) and math.isfinite(value):
        return None
    if not isinstance(value, (list, tuple, dict)):
        return f"{path} is {_what(value)}"
    if id(value) in open_ids:
        return f"{path} refers back to a container it is in"
    open_ids.add(id(value))
    try:
        is_object = isinstance(value, dict)
        for key, item in value.items() if is_object else enumerate(value):
            if is_object and not isinstance(key, str):
                return f"{path} has a key that is not a string: {key!r:.40}"
            problem = _problem(item, f"{path}[{json.dumps(key) if is_object else key}]", open_ids)
            if problem:
                return problem
        return None
    finally:
        open_ids.discard(id(value))


def _what(value: object) -> str:
    """What a value that is not JSON data is: ``NaN``, ``a set``, ``a datetime.date``."""
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    kind = type(value)
    name = kind.__qualname__
    if kind.__module__ != "builtins":
        name = f"{kind.__module__}.{name}"
    return f"{'an' if name[0] in 'aeiouAEIOU' else 'a'} {name}"


# --- seccomp -------------------------------------------------------------------------------

_SYSCALLS = {
    # arch: (audit arch, {name: number})
    "x86_64": (
        0xC000003E,
        {
            "socket": 41, "clone": 56, "fork": 57, "vfork": 58, "execve": 59, "ptrace": 101,
            "mount": 165, "add_key": 248, "request_key": 249, "keyctl": 250, "unshare": 272,
            "perf_event_open": 298, "setns": 308, "process_vm_readv": 310,
            "process_vm_writev": 311, "bpf": 321, "execveat": 322, "userfaultfd": 323,
            "io_uring_setup": 425, "clone3": 435, "kill": 62, "tkill": 200, "tgkill": 234,
            "rt_sigqueueinfo": 129, "rt_tgsigqueueinfo": 297, "pidfd_send_signal": 424,
            "shmget": 29, "shmat": 30, "shmctl": 31, "semget": 64, "semop": 65, "semctl": 66,
            "semtimedop": 220, "msgget": 68, "msgsnd": 69, "msgrcv": 70, "msgctl": 71,
            "mq_open": 240, "fcntl": 72, "ioctl": 16,
        },
    ),
    "aarch64": (
        0xC00000B7,
        {
            "socket": 198, "clone": 220, "execve": 221, "ptrace": 117, "mount": 40,
            "add_key": 217, "request_key": 218, "keyctl": 219, "unshare": 97,
            "perf_event_open": 241, "setns": 268, "process_vm_readv": 270,
            "process_vm_writev": 271, "bpf": 280, "execveat": 281, "userfaultfd": 282,
            "io_uring_setup": 425, "clone3": 435, "kill": 129, "tkill": 130, "tgkill": 131,
            "rt_sigqueueinfo": 138, "rt_tgsigqueueinfo": 240, "pidfd_send_signal": 424,
            "shmget": 194, "shmat": 196, "shmctl": 195, "semget": 190, "semop": 193,
            "semctl": 191, "semtimedop": 192, "msgget": 186, "msgsnd": 189, "msgrcv": 188,
            "msgctl": 187, "mq_open": 180, "fcntl": 25, "ioctl": 29,
        },
    ),
}  # fmt: skip
_EPERM, _EAGAIN, _ENOSYS = 1, 11, 38
_CLONE_THREAD = 0x00010000
_RET_ALLOW, _RET_ERRNO, _RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
_LD_ABS, _JEQ, _JSET, _JGE, _RET = 0x20, 0x15, 0x45, 0x35, 0x06


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


_SELF_ONLY = ("kill", "tgkill")  # signals to itself (abort, raise) only: its first argument
# commands that make the kernel signal another process when a file is ready: fcntl F_SETOWN and
# F_SETOWN_EX, ioctl FIOSETOWN and SIOCSPGRP (the second argument)
_NO_OWNER = {"fcntl": (8, 15), "ioctl": (0x8901, 0x8902)}


def _seccomp_program(machine):
    """A BPF program: threads yes; processes, exec, sockets, ptrace, namespaces, System V and
    POSIX message-queue IPC (state that would outlive the job) and signals to other processes
    no."""
    audit_arch, numbers = _SYSCALLS[machine]
    program = [
        (_LD_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ, 1, 0, audit_arch),
        (_RET, 0, 0, _RET_KILL),
        (_LD_ABS, 0, 0, 0),  # seccomp_data.nr
    ]
    if machine == "x86_64":  # the x32 ABI reaches the same calls under other numbers
        program += [(_JGE, 0, 1, 0x40000000), (_RET, 0, 0, _RET_KILL)]
    # clone is allowed for threads only: flags are its first argument
    program += [
        (_JEQ, 0, 4, numbers["clone"]),
        (_LD_ABS, 0, 0, 16),  # seccomp_data.args[0], low 32 bits
        (_JSET, 0, 1, _CLONE_THREAD),
        (_RET, 0, 0, _RET_ALLOW),
        (_RET, 0, 0, _RET_ERRNO | _EAGAIN),
    ]
    # clone3 hides its flags in memory: ENOSYS makes the C library fall back to clone
    program += [(_JEQ, 0, 1, numbers["clone3"]), (_RET, 0, 0, _RET_ERRNO | _ENOSYS)]
    for name in _SELF_ONLY:
        program += [
            (_JEQ, 0, 4, numbers[name]),
            (_LD_ABS, 0, 0, 16),
            (_JEQ, 0, 1, os.getpid()),
            (_RET, 0, 0, _RET_ALLOW),
            (_RET, 0, 0, _RET_ERRNO | _EPERM),
        ]
    for name, commands in _NO_OWNER.items():
        size = len(commands)
        program += [(_JEQ, 0, size + 3, numbers[name]), (_LD_ABS, 0, 0, 24)]  # args[1], low bits
        program += [(_JEQ, size - i, 0, command) for i, command in enumerate(commands)]
        program += [(_RET, 0, 0, _RET_ALLOW), (_RET, 0, 0, _RET_ERRNO | _EPERM)]
    for name, number in numbers.items():
        if name in ("clone", "clone3") or name in _SELF_ONLY or name in _NO_OWNER:
            continue
        errno = _EAGAIN if name in ("fork", "vfork") else _EPERM
        program += [(_JEQ, 0, 1, number), (_RET, 0, 0, _RET_ERRNO | errno)]
    program.append((_RET, 0, 0, _RET_ALLOW))
    return program


def install_seccomp():
    machine = os.uname().machine
    if machine not in _SYSCALLS:
        raise OSError(f"no seccomp filter for the {machine} architecture")
    program = _seccomp_program(machine)
    filters = (_SockFilter * len(program))(*[_SockFilter(*row) for row in program])
    fprog = _SockFprog(len(program), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [
        ctypes.c_int,
        ctypes.c_ulong,
        ctypes.c_void_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    if libc.prctl(38, 1, None, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


# --- the job, in the forked child ----------------------------------------------------------


class ToolError(Exception):
    """A tool refused the call or failed."""


class Tools:
    """``tools.name(...)`` sends the call to the host's toolset and waits for its reply."""

    def __init__(self, job_id, specs):
        self._job_id = job_id
        self._params = {spec["name"]: spec["params"] for spec in specs}

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._params:
            raise ToolError(f"unknown tool {name!r}")

        def call(*args, **kwargs):
            params = self._params[name]
            if len(args) > len(params):
                raise ToolError(f"{name} takes at most {len(params)} positional arguments")
            for param, value in zip(params, args, strict=False):
                if param in kwargs:
                    raise ToolError(f"{name} got two values for {param!r}")
                kwargs[param] = value
            for param, value in kwargs.items():
                problem = json_problem(value, param)
                if problem:
                    raise ToolError(f"{name}: argument {param!r} is not JSON data: {problem}")
            write_frame(
                CHANNEL_OUT, {"op": "call", "id": self._job_id, "tool": name, "args": kwargs}
            )
            reply = read_frame(0)
            if reply is None:
                os._exit(70)
            if reply.get("op") == "error":
                raise ToolError(reply.get("message", "tool call failed"))
            return reply.get("value")

        call.__name__ = name
        return call

    def __dir__(self):
        return sorted(self._params)


def _apply_limits(limits):
    cpu = int(limits["cpu_s"])
    memory = int(limits["memory_mb"]) * 1024 * 1024
    output = int(limits["output_kb"]) * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_FSIZE, (output, output))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _drop_privileges(uid):
    """Become ``uid`` (the subprocess sandbox run by root): no capabilities, no root files."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)


def _describe(error):
    """``Type: message (line N)`` where N is a line of the task's own code."""
    line = ""
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == "<task>":
            line = f" (line {frame.lineno})"
    return f"{type(error).__name__}: {error}"[:500] + line


def run_job(job, output_path, drop_uid, channel_in, channel_out):
    os.setsid()
    os.dup2(channel_in, 0)
    os.dup2(channel_out, CHANNEL_OUT)
    out = os.open(output_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.closerange(CHANNEL_OUT + 1, 1 << 16)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # oversized output fails the write, not the job
    _apply_limits(job["limits"])
    if drop_uid is not None:
        _drop_privileges(drop_uid)
    install_seccomp()
    result = {"op": "result", "id": job["id"], "ok": False}
    try:
        namespace = {"__name__": "__task__", "__builtins__": builtins}
        exec(compile(job["source"], "<task>", "exec"), namespace)
        function = namespace.get(job["entry"])
        if not callable(function):
            raise NameError(f"the code defines no function {job['entry']!r}")
        args = list(job["args"])
        if job.get("tools") is not None:
            args.insert(0, Tools(job["id"], job["tools"]))
        value = function(*args)
        problem = json_problem(value, f"{job['entry']}()")
        if problem:
            result["error"] = f"the return value is not JSON data: {problem}"[:500]
        else:
            result.update(ok=True, value=value)
    except BaseException as error:  # everything the code does wrong is a result, not a crash
        result["error"] = _describe(error)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        write_frame(CHANNEL_OUT, result)
    except BaseException:
        os._exit(71)
    os._exit(0)


# --- the worker loop -----------------------------------------------------------------------


def _kill(pid):
    for kill in (os.killpg, os.kill):
        with contextlib.suppress(ProcessLookupError):
            kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def _forward(pending, job_id, limit):
    """Send the host every whole frame in ``pending`` as a frame of this job. Returns what is
    left and None, or a status word when the job broke the protocol."""
    while len(pending) >= HEADER.size:
        (size,) = HEADER.unpack_from(pending)
        if size > limit:
            return pending, "oversized"
        if len(pending) < HEADER.size + size:
            break
        body, pending = pending[HEADER.size : HEADER.size + size], pending[HEADER.size + size :]
        try:
            message = json.loads(body)
            if not isinstance(message, dict) or message.get("op") not in RELAYED:
                raise ValueError("not a call or a result")
            message["id"] = job_id
            data = json.dumps(message, allow_nan=False).encode()
        except (ValueError, TypeError, RecursionError):
            return pending, "garbage"
        _write_all(1, HEADER.pack(len(data)) + data)
    return pending, None


def _write_all(fd, data):
    while data:
        data = data[os.write(fd, data) :]


def _relay(pid, deadline, job_id, from_job, to_job, limit):
    """Relay between the job and the host until the job exits (or is killed at ``deadline``, or
    for breaking the protocol). Returns a status word."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    os.set_blocking(from_job, False)
    os.set_blocking(to_job, False)
    pending, replies, job_open, status = b"", b"", True, None
    while status is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            _kill(pid)
            status = "timeout"
            break
        readers = [0] + ([from_job] if job_open else []) + ([pidfd] if pidfd is not None else [])
        writers = [to_job] if replies else []
        timeout = remaining if pidfd is not None else min(remaining, 0.01)
        readable, writable, _ = select.select(readers, writers, [], timeout)
        if from_job in readable:
            chunk = _read_some(from_job)
            if chunk == b"":
                job_open = False
            pending, problem = _forward(pending + (chunk or b""), job_id, limit)
            if problem:
                _kill(pid)
                status = problem
                break
        if 0 in readable:
            reply = _read_raw(0)
            if reply is None:  # the host is gone
                _kill(pid)
                sys.exit(0)
            replies += reply
        if writable:
            try:
                replies = replies[os.write(to_job, replies) :]
            except BlockingIOError:
                pass
            except OSError:  # the job closed its end: it will not read them
                replies = b""
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = _status_word(raw)
    if pidfd is not None:
        os.close(pidfd)
    if status not in ("oversized", "garbage"):  # what the job wrote before it ended
        while job_open:
            chunk = _read_some(from_job)
            job_open = bool(chunk)
            pending, problem = _forward(pending + (chunk or b""), job_id, limit)
            if problem:
                status = problem
                break
    return status


def _read_some(fd):
    """Up to 64 KiB from ``fd``: b"" at its end, None when nothing is there now."""
    try:
        return os.read(fd, 1 << 16)
    except BlockingIOError:
        return None


def _read_raw(fd):
    """The next frame from ``fd`` as bytes, header included; None at the end of input."""
    header = _read_exact(fd, HEADER.size)
    if header is None:
        return None
    (size,) = HEADER.unpack(header)
    if size > MAX_INPUT:
        raise ValueError(f"frame of {size} bytes exceeds {MAX_INPUT}")
    body = _read_exact(fd, size)
    return None if body is None else header + body


def _status_word(raw):
    if os.WIFSIGNALED(raw):
        number = os.WTERMSIG(raw)
        return {
            signal.SIGXCPU: "cpu",
            signal.SIGKILL: "killed",
            signal.SIGSYS: "forbidden",
            signal.SIGSEGV: "crashed",
        }.get(number, f"signal {number}")
    return f"exit {os.WEXITSTATUS(raw)}"


def _read_output(path, limit):
    """The job's output file; only a plain file (the job may have put a link, a pipe or a
    folder in its place)."""
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return ""
            data = handle.read(limit)
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def _clear(path):
    """Delete everything in the directory ``path``, so that no job sees another one's files,
    whatever modes the job left on its folders. Raises if something stays."""
    for entry in os.scandir(path):
        if not entry.is_dir(follow_symlinks=False):
            os.unlink(entry.path)
            continue
        try:
            shutil.rmtree(entry.path)  # never follows a link, even one swapped in meanwhile
        except OSError:  # a folder the job locked (chmod 0), and the worker is no real root
            top = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
            try:
                _unlock(top, entry.name)
            finally:
                os.close(top)
            shutil.rmtree(entry.path)


def _unlock(dir_fd, name):
    """Give the owner all rights on the folder ``name`` and every folder in it, following no
    link."""
    os.chmod(name, 0o700, dir_fd=dir_fd, follow_symlinks=False)
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    try:
        for entry in os.scandir(fd):
            if entry.is_dir(follow_symlinks=False):
                _unlock(fd, entry.name)
    finally:
        os.close(fd)


def _not_dumpable():
    """Keep jobs (same user, same namespaces) out of this process's memory and file descriptors:
    /proc/PID/mem, /proc/PID/fd and pidfd_getfd all need a dumpable target."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(4, 0, 0, 0, 0) != 0:  # PR_SET_DUMPABLE
        raise OSError(ctypes.get_errno(), "PR_SET_DUMPABLE failed")


def main():
    workdir = sys.argv[1]
    drop_uid = int(sys.argv[2]) if len(sys.argv) > 2 else None
    os.chdir(workdir)
    _not_dumpable()
    for name in PRELOADED:  # imported once here, so that each forked job finds them warm
        __import__(name)
    while True:
        job = read_frame(0)
        if job is None:
            return
        if job.get("op") != "run":
            continue  # a reply the last job died before reading
        jobdir = os.path.join(workdir, "job")
        os.mkdir(jobdir, 0o700)
        if drop_uid is not None:
            os.chown(jobdir, drop_uid, drop_uid)
        output_path = os.path.join(workdir, "output")
        deadline = time.monotonic() + float(job["limits"]["wall_s"])
        limit = int(job["limits"]["max_message_kb"]) * 1024
        replies_in, replies_out = os.pipe()  # worker -> job: the host's replies
        frames_in, frames_out = os.pipe()  # job -> worker: its calls and result
        pid = os.fork()
        if pid == 0:
            try:
                os.chdir(jobdir)
                run_job(job, output_path, drop_uid, replies_in, frames_out)
            finally:
                os._exit(72)
        os.close(replies_in)
        os.close(frames_out)
        status = _relay(pid, deadline, job["id"], frames_in, replies_out, limit)
        os.close(frames_in)
        os.close(replies_out)
        output = _read_output(output_path, int(job["limits"]["output_kb"]) * 1024)
        _clear(workdir)  # if that fails, the worker dies here, and the host starts a fresh one
        write_frame(1, {"op": "done", "id": job["id"], "status": status, "output": output[-2000:]})


if __name__ == "__main__":
    main()
