"""Hostile programs: each one is rejected or contained, the host is unharmed, and the service
goes on.

Every case runs through ``Worker.run`` against the sandboxes with a file system of their own
(bwrap, and docker where an engine answers); the process, signal, limit and protocol cases run
against the weaker ``subprocess`` sandbox too. Without an engine the docker cases are skipped,
except where ``SC_REQUIRE_DOCKER=1`` (CI, which starts one) makes that a failure. Each test
asserts on the outcome, on the host (canary files, a loopback server, a victim process, the
environment) and then that the same worker still runs an honest program correctly. Time
bounds are generous hang detectors, not speed checks.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from sc_core.errors import ScError
from sc_core.sandbox import (
    HOST_GRACE_S,
    Limits,
    Outcome,
    Sandbox,
    SandboxPool,
    Worker,
    get_sandbox,
)
from sc_core.task import parse_line
from sc_core.tools import Tool, Toolset, load_toolset
from sc_core.verify import run_filter

ROOT = Path(__file__).resolve().parent.parent
LIMITS = Limits(wall_s=8, cpu_s=2)
QUICK = Limits(wall_s=2, cpu_s=1, max_tool_calls=5)  # for the cases that run into a limit
SLACK_S = 60  # on top of the limits: a worker restart on a busy machine, never a speed check
CANARY = "canary: the host's own data"
HONEST = (
    "def solve(tools):\n    print('fine')\n    return tools.add(a=tools.multiply(a=2, b=3), b=1)\n"
)
X86_64 = platform.machine() == "x86_64"
ISOLATED = ["bwrap", "docker"]  # a file system of their own, /tmp included
EVERY = [*ISOLATED, "subprocess"]


def sandbox_named(name: str) -> Sandbox:
    """``get_sandbox(name)``; docker without an engine is a skip, or a failure in CI."""
    try:
        return get_sandbox(name)
    except ScError as error:
        if name != "docker" or os.environ.get("SC_REQUIRE_DOCKER") == "1":
            raise
        pytest.skip(str(error))


def code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


def calculator() -> Toolset:
    return load_toolset("calculator").create()


def run(worker: Worker, source: str, entry="solve", args=None, toolset=None, **values) -> Outcome:
    """Run ``solve(tools)`` or ``verify(state, answer)`` from ``source``, with each ``NAME`` in
    it replaced by ``values[NAME]``, and check that it ends in bounded time."""
    source = code(source)
    for name, value in values.items():
        source = source.replace(name, repr(value))
    if entry == "solve" and toolset is None:
        toolset = calculator()
    if args is None:
        args = [{}, None] if entry == "verify" else []
    start = time.monotonic()
    outcome = worker.run(source, entry, list(args), toolset)
    elapsed = time.monotonic() - start
    assert elapsed < worker.limits.wall_s + HOST_GRACE_S + SLACK_S, f"took {elapsed:.0f}s"
    return outcome


def assert_still_serving(worker: Worker) -> None:
    """The host is alive and the worker (or its replacement) runs an honest program right."""
    os.kill(os.getpid(), 0)
    outcome = worker.run(HONEST, "solve", [], calculator())
    calls = [("multiply", {"a": 2, "b": 3}), ("add", {"a": 6, "b": 1})]
    assert outcome == Outcome(True, value=7, error=None, output="fine\n", tool_calls=2, calls=calls)


def seen_by_program(outcome: Outcome) -> str:
    return json.dumps(outcome.value) + (outcome.error or "") + outcome.output


@pytest.fixture(scope="module", params=ISOLATED)
def isolated(request):
    worker = Worker(sandbox_named(request.param), LIMITS)
    yield worker
    worker.close()


@pytest.fixture(scope="module", params=EVERY)
def any_sandbox(request):
    worker = Worker(sandbox_named(request.param), LIMITS)
    yield worker
    worker.close()


@pytest.fixture(scope="module", params=EVERY)
def quick(request):
    worker = Worker(sandbox_named(request.param), QUICK)
    yield worker
    worker.close()


@pytest.fixture
def canaries():
    """Canary files in the repository, the host's /tmp and the user's home; each has a sibling
    name that must not appear."""
    tag = uuid.uuid4().hex[:12]
    places = {"repo": ROOT, "tmp": Path(tempfile.gettempdir()), "home": Path.home()}
    files = {place: folder / f".sc-hostile-canary-{tag}" for place, folder in places.items()}
    for path in files.values():
        path.write_text(CANARY)
    news = {place: folder / f".sc-hostile-new-{tag}" for place, folder in places.items()}
    yield files, news
    for path in [*files.values(), *news.values()]:
        path.unlink(missing_ok=True)


def assert_canaries_intact(canaries) -> None:
    files, news = canaries
    for path in files.values():
        assert path.read_text() == CANARY, path
    for path in news.values():
        assert not path.exists(), path


@pytest.fixture
def listener():
    """A TCP server on the host's loopback; it must never see a connection."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    yield server
    server.close()


def connections(server: socket.socket) -> int:
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


@pytest.fixture
def victim():
    """A host process of the same user as the jobs (nobody, when the tests run as root)."""
    user = 65534 if os.geteuid() == 0 else None
    process = subprocess.Popen(["sleep", "300"], user=user, group=user, start_new_session=True)
    yield process
    process.kill()
    process.wait()


# -- the network ------------------------------------------------------------------------------


def test_no_network_to_the_hosts_loopback(any_sandbox, listener):
    """Python's sockets and urllib where the job can import them (run by root, the subprocess
    sandbox's jobs cannot read a Python installed under /root), and socket() through ctypes."""
    port = listener.getsockname()[1]
    outcome = run(
        any_sandbox,
        """
        import ctypes

        def python_attempts():
            import socket, urllib.request

            return [
                lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2),
                lambda: socket.create_connection(("localhost", PORT), timeout=2),
                lambda: urllib.request.urlopen("http://127.0.0.1:%d/" % PORT, timeout=2),
                lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(
                    b"x", ("127.0.0.1", PORT)
                ),
                lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM),
                lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
                lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW),
            ]

        def verify(state, answer):
            libc = ctypes.CDLL(None, use_errno=True)
            raw = []
            for family, kind in [(2, 1), (2, 2), (10, 1), (1, 1), (16, 3), (17, 3)]:
                raw.append([libc.socket(family, kind, 0), ctypes.get_errno()])
            try:
                attempts = python_attempts()
            except ImportError:
                attempts = []
            failures = []
            for attempt in attempts:
                try:
                    attempt()
                    failures.append("CONNECTED")
                except Exception as error:
                    failures.append(type(error).__name__)
            return [raw, failures]
        """,
        "verify",
        PORT=port,
    )
    assert outcome.ok, outcome.error
    raw, failures = outcome.value
    assert raw == [[-1, 1]] * 6  # socket() is refused, whatever the family
    if any_sandbox.sandbox.name != "subprocess":
        assert len(failures) == 7
    assert all(name in ("PermissionError", "URLError", "gaierror") for name in failures)
    assert connections(listener) == 0
    assert_still_serving(any_sandbox)


# -- the host's files -------------------------------------------------------------------------


def test_no_writes_outside_the_sandbox(isolated, canaries):
    files, news = canaries
    # only canaries: were the sandbox broken, nothing real would be damaged
    targets = [str(path) for path in [*files.values(), *news.values()]]
    outcome = run(
        isolated,
        """
        import os

        def verify(state, answer):
            results = {}
            for path in TARGETS:
                for name, attack in [
                    ("write", lambda: open(path, "w").write("pwned")),
                    ("append", lambda: open(path, "a").write("pwned")),
                    ("remove", lambda: os.remove(path)),
                    ("rename", lambda: os.rename(path, path + ".moved")),
                    ("chmod", lambda: os.chmod(path, 0o777)),
                    ("truncate", lambda: os.truncate(path, 0)),
                    ("makedirs", lambda: os.makedirs(os.path.dirname(path), exist_ok=True)),
                ]:
                    try:
                        attack()
                        results[name + " " + path] = "DONE"
                    except Exception as error:
                        results[name + " " + path] = type(error).__name__
            return results
        """,
        "verify",
        TARGETS=targets,
    )
    assert outcome.ok, outcome.error
    # what "works" works on the sandbox's own /tmp, or is a makedirs of a folder it can see
    sandbox_tmp = Path(tempfile.gettempdir()) == Path("/tmp")
    for name, result in outcome.value.items():
        attack, path = name.split(" ", 1)
        if result == "DONE":
            assert attack == "makedirs" or (sandbox_tmp and path.startswith("/tmp/")), name
        else:
            assert result in ("FileNotFoundError", "OSError", "PermissionError"), (name, result)
    assert any(result != "DONE" for result in outcome.value.values())
    assert_canaries_intact(canaries)
    assert_still_serving(isolated)


def test_the_users_home_and_the_hosts_tmp_cannot_be_read(isolated, canaries):
    files, _ = canaries
    outcome = run(
        isolated,
        """
        import os

        def verify(state, answer):
            seen = {}
            for path in PATHS:
                try:
                    seen[path] = open(path).read()
                except Exception as error:
                    seen[path] = type(error).__name__
            for folder in FOLDERS:
                try:
                    seen[folder] = sorted(os.listdir(folder))
                except Exception as error:
                    seen[folder] = type(error).__name__
            return seen
        """,
        "verify",
        PATHS=[str(path) for path in files.values()],
        FOLDERS=["/tmp", str(Path.home()), str(ROOT), "/etc"],
    )
    assert outcome.ok, outcome.error
    assert CANARY not in seen_by_program(outcome)
    for path in files.values():
        assert outcome.value[str(path)] in ("FileNotFoundError", "PermissionError")
        for folder in ["/tmp", str(Path.home())]:
            assert path.name not in outcome.value[folder]
    assert outcome.value["/tmp"] == ["job", "output"]  # its own /tmp, nothing of the host's
    assert outcome.value[str(ROOT)] == "FileNotFoundError"
    assert "passwd" not in outcome.value["/etc"] and "shadow" not in outcome.value["/etc"]
    assert_canaries_intact(canaries)
    assert_still_serving(isolated)


def test_the_sandbox_filesystem_outside_tmp_is_read_only(isolated):
    outcome = run(
        isolated,
        """
        import os

        def verify(state, answer):
            results = {}
            for path in ["/x", "/etc/x", "/root/x", "/usr/x", "/sc/x", "/dev/x", "/dev/shm/x"]:
                try:
                    with open(path, "w") as handle:
                        handle.write("x")
                    results[path] = "WRITTEN"
                except OSError as error:
                    results[path] = error.errno
            return results
        """,
        "verify",
    )
    assert outcome.ok, outcome.error
    assert "WRITTEN" not in outcome.value.values(), outcome.value
    assert_still_serving(isolated)


def test_filling_tmp_stops_at_its_size_and_leaves_nothing(isolated):
    outcome = run(
        isolated,
        """
        import os

        def verify(state, answer):
            os.mkdir("/tmp/junk")
            count = 0
            try:
                while True:
                    with open("/tmp/junk/%d" % count, "wb") as handle:
                        handle.write(b"x" * 60000)
                    count += 1
            except OSError as error:
                return [count, error.errno]
        """,
        "verify",
    )
    assert outcome.ok, outcome.error
    count, errno = outcome.value
    assert errno == 28 and count * 60000 <= 64 * 1024 * 1024  # ENOSPC at the tmpfs size
    look = run(
        isolated, "import os\ndef verify(s, a):\n    return sorted(os.listdir('/tmp'))", "verify"
    )
    assert look.value == ["job", "output"]
    assert_still_serving(isolated)


def test_sysctls_cannot_be_opened_for_writing(any_sandbox):
    # open only: nothing is ever written, even if the sandbox were broken
    outcome = run(
        any_sandbox,
        """
        import os

        def verify(state, answer):
            results = {}
            for path in PATHS:
                try:
                    os.close(os.open(path, os.O_WRONLY))
                    results[path] = "OPENED"
                except OSError as error:
                    results[path] = type(error).__name__
            return results
        """,
        "verify",
        PATHS=[
            "/proc/sys/kernel/core_pattern",
            "/proc/sys/kernel/modprobe",
            "/proc/sys/vm/drop_caches",
            "/proc/sys/kernel/hostname",
            "/proc/sysrq-trigger",
        ],
    )
    assert outcome.ok, outcome.error
    assert "OPENED" not in outcome.value.values(), outcome.value
    assert_still_serving(any_sandbox)


# -- secrets in the environment ---------------------------------------------------------------


@pytest.mark.parametrize("sandbox", ISOLATED)
def test_api_keys_in_the_hosts_environment_are_not_visible(monkeypatch, sandbox):
    secret = f"secret-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    monkeypatch.setenv("ANTHROPIC_API_KEY", secret)
    worker = Worker(sandbox_named(sandbox), LIMITS)  # started with the secret in os.environ
    try:
        outcome = run(
            worker,
            """
            import os

            def verify(state, answer):
                seen = {"environ": dict(os.environ), "getenv": os.getenv("OPENAI_API_KEY")}
                for pid in ["self", "1", str(os.getppid())] + os.listdir("/proc"):
                    try:
                        with open("/proc/%s/environ" % pid, "rb") as handle:
                            seen[pid] = handle.read().decode("utf-8", "replace")
                    except Exception as error:
                        seen[pid] = type(error).__name__
                print(seen)
                return seen
            """,
            "verify",
        )
        assert outcome.ok, outcome.error
        assert secret not in seen_by_program(outcome)
        assert "OPENAI_API_KEY" not in seen_by_program(outcome)
        assert outcome.value["getenv"] is None
        environ, allowed = outcome.value["environ"], {"PATH", "LANG", "PWD"}
        if sandbox == "docker":  # the engine sets these two always: its own, not the host's
            allowed |= {"HOSTNAME", "HOME"}
            assert environ.get("HOSTNAME", "sandbox") == "sandbox", environ
            assert environ.get("HOME", "/") == "/", environ
        assert set(environ) <= allowed
        assert_still_serving(worker)
    finally:
        worker.close()


def test_api_keys_are_not_in_the_subprocess_sandboxs_environment_either(monkeypatch):
    secret = f"secret-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    worker = Worker(get_sandbox("subprocess"), LIMITS)
    try:
        outcome = run(
            worker,
            """
            import os

            def verify(state, answer):
                try:  # a job that dropped from root to nobody cannot read it at all
                    environ = open("/proc/self/environ").read()
                except OSError as error:
                    environ = type(error).__name__
                return [dict(os.environ), environ]
            """,
            "verify",
        )
        assert outcome.ok, outcome.error
        assert secret not in seen_by_program(outcome)
        assert set(outcome.value[0]) <= {"PATH", "LANG", "PWD"}
    finally:
        worker.close()


# -- time, memory, processes, threads, output -------------------------------------------------


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("busy loop", "while True:\n        pass"),
        (
            "busy loop ignoring SIGXCPU",
            "signal.signal(signal.SIGXCPU, signal.SIG_IGN)\n    while True:\n        pass",
        ),
        ("sleep", "time.sleep(3600)"),
        (
            "busy thread",
            "_thread.start_new_thread(lambda: [0 for _ in iter(int, 1)], ())\n    time.sleep(3600)",
        ),
        (
            "catching everything",
            "while True:\n        try:\n            time.sleep(3600)\n"
            "        except BaseException:\n            pass",
        ),
    ],
)
def test_endless_programs_are_stopped(quick, name, body):
    source = f"import _thread, signal, time\n\ndef verify(state, answer):\n    {body}\n"
    outcome = run(quick, source, "verify")
    assert not outcome.ok and outcome.value is None
    assert outcome.error in (
        "CPU limit of 1s exceeded",
        "wall-clock limit of 2s exceeded",
        "killed (memory limit or signal)",  # the hard CPU limit, when SIGXCPU is ignored
    ), outcome.error
    assert_still_serving(quick)


@pytest.mark.parametrize(
    "body",
    [
        "return len(bytearray(10 ** 11))",
        "hoard = []\n    while True:\n        hoard.append(bytearray(10 ** 7))",
        "return len('x' * (2 ** 40))",
        "return len([0] * 10 ** 10)",
    ],
)
def test_memory_bombs_hit_the_memory_limit(any_sandbox, body):
    outcome = run(any_sandbox, f"def verify(state, answer):\n    {body}\n", "verify")
    assert not outcome.ok
    assert outcome.error.startswith(("MemoryError", "OSError: [Errno 12]")), outcome.error
    assert_still_serving(any_sandbox)


def test_shared_memory_outside_the_job_is_refused(any_sandbox):
    """System V shared memory outlives the process and is not counted by its memory limit."""
    outcome = run(
        any_sandbox,
        """
        import ctypes

        def verify(state, answer):
            libc = ctypes.CDLL(None, use_errno=True)
            results = []
            for make, remove, args in [  # small, and removed at once if the filter fails
                (libc.shmget, lambda id: libc.shmctl(id, 0, None), (0, 4096, 0o1600)),
                (libc.semget, lambda id: libc.semctl(id, 0, 0), (0, 1, 0o1600)),
                (libc.msgget, lambda id: libc.msgctl(id, 0, None), (0, 0o1600)),
            ]:
                made = make(*args)
                results.append([made, ctypes.get_errno()])
                if made >= 0:
                    remove(made)
            results.append([libc.shmctl(0, 2, None), ctypes.get_errno()])  # IPC_STAT on id 0
            return results
        """,
        "verify",
    )
    assert outcome.ok, outcome.error
    assert outcome.value == [[-1, 1]] * 4  # EPERM from the seccomp filter
    assert_still_serving(any_sandbox)


def test_a_fork_bomb_cannot_fork(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        import os

        def verify(state, answer):
            children = 0
            while True:
                if os.fork() == 0:
                    while True:
                        pass
                children += 1
        """,
        "verify",
    )
    assert not outcome.ok
    assert outcome.error.startswith("BlockingIOError: [Errno 11]"), outcome.error
    assert_still_serving(any_sandbox)


def test_no_new_processes_and_no_exec(any_sandbox):
    marker = f"/tmp/sc-hostile-spawned-{uuid.uuid4().hex}"
    outcome = run(
        any_sandbox,
        """
        import os

        def verify(state, answer):
            command = "echo pwned > " + MARKER
            attempts = {
                "system": lambda: os.system(command),
                "popen": lambda: __import__("subprocess").Popen(["/bin/sh", "-c", command]),
                "run": lambda: __import__("subprocess").run(command, shell=True),
                "posix_spawn": lambda: os.posix_spawn("/bin/sh", ["sh", "-c", command], {}),
                "os.popen": lambda: os.popen(command).read(),
                "multiprocessing": lambda: __import__("multiprocessing").Process(
                    target=print
                ).start(),
                "pty": lambda: __import__("pty").fork(),
                "execv": lambda: os.execv("/bin/sh", ["sh", "-c", command]),
            }
            results = {}
            for name, attempt in attempts.items():
                try:
                    results[name] = repr(attempt())
                except BaseException as error:
                    results[name] = type(error).__name__
            results["marker"] = os.path.exists(MARKER)
            return results
        """,
        "verify",
        MARKER=marker,
    )
    assert outcome.ok, outcome.error
    assert outcome.value.pop("marker") is False
    assert outcome.value.pop("system") != "0"  # system() cannot fork: it returns an error
    for name, result in outcome.value.items():
        assert result.endswith("Error"), (name, result)  # raised; nothing was started
    assert not os.path.exists(marker)
    assert_still_serving(any_sandbox)


@pytest.mark.skipif(not X86_64, reason="raw system call numbers are x86_64 ones")
def test_ctypes_system_calls_cannot_fork_exec_or_escape(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        import ctypes, os

        def verify(state, answer):
            libc = ctypes.CDLL(None, use_errno=True)
            results = {}

            def call(name, *args):
                value = libc.syscall(*args)
                results[name] = [value, ctypes.get_errno()]
                if value == 0:  # a child would exit at once, whatever happens
                    os._exit(0)

            call("fork", 57)
            call("vfork", 58)
            call("clone", 56, 17, 0, 0, 0, 0)  # SIGCHLD: a process, not a thread
            call("clone3", 435, 0, 0)
            call("execve", 59, b"/bin/sh", 0, 0)
            call("unshare", 272, 0x10000000)  # CLONE_NEWUSER
            call("ptrace", 101, 16, os.getppid(), 0, 0)  # PTRACE_ATTACH
            call("mount", 165, b"none", b"/tmp", b"tmpfs", 0, 0)
            call("socket", 41, 2, 1, 0)
            call("bpf", 321, 0, 0, 0)
            call("io_uring_setup", 425, 1, 0)
            call("keyctl", 250, 0, 0)
            results["libc.fork"] = [libc.fork(), ctypes.get_errno()]
            if results["libc.fork"][0] == 0:
                os._exit(0)
            return results
        """,
        "verify",
    )
    assert outcome.ok, outcome.error
    for name, (value, errno) in outcome.value.items():
        assert value == -1, (name, value)
        assert errno in (1, 11, 38), (name, errno)  # EPERM, EAGAIN, ENOSYS
    assert_still_serving(any_sandbox)


@pytest.mark.skipif(not X86_64, reason="raw system call numbers are x86_64 ones")
def test_the_x32_system_call_numbers_are_no_way_around_the_filter(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        import ctypes

        def verify(state, answer):
            return ctypes.CDLL(None).syscall(0x40000000 + 57)  # fork, x32 ABI
        """,
        "verify",
    )
    assert outcome == Outcome(False, error="killed for a forbidden system call")
    assert_still_serving(any_sandbox)


def test_a_segmentation_fault_is_an_outcome(any_sandbox):
    outcome = run(
        any_sandbox, "import ctypes\ndef verify(s, a):\n    return ctypes.string_at(0)", "verify"
    )
    assert outcome == Outcome(False, error="crashed (segmentation fault)")
    assert_still_serving(any_sandbox)


def test_a_thread_bomb_is_bounded(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        import _thread, time

        def verify(state, answer):
            started = 0
            try:
                while started < 100000:
                    _thread.start_new_thread(time.sleep, (3600,))
                    started += 1
            except Exception as error:
                return [started, type(error).__name__]
            return [started, None]
        """,
        "verify",
    )
    assert outcome.ok, outcome.error
    started, error = outcome.value
    assert error == "RuntimeError" and started < 100000  # the address space ran out
    assert_still_serving(any_sandbox)  # and the sleeping threads went with the job


def test_an_output_flood_is_cut_off(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        def verify(state, answer):
            while True:
                print("flood " * 100)
        """,
        "verify",
    )
    assert not outcome.ok
    assert len(outcome.output) <= 2000 and "flood flood" in outcome.output
    assert_still_serving(any_sandbox)


def test_an_output_flood_that_ignores_errors_is_stopped(quick):
    outcome = run(
        quick,
        """
        import os

        def verify(state, answer):
            while True:
                try:
                    os.write(1, b"flood " * 1000)
                    os.write(2, b"flood " * 1000)
                except BaseException:
                    pass
        """,
        "verify",
    )
    assert not outcome.ok and "limit" in outcome.error
    assert len(outcome.output) <= 2000
    assert_still_serving(quick)


@pytest.mark.parametrize("where", ["huge", "/tmp/huge"])
def test_a_huge_file_stops_at_the_file_size_limit(any_sandbox, where):
    if where.startswith("/tmp") and any_sandbox.sandbox.name == "subprocess":
        pytest.skip("the subprocess sandbox's /tmp is the host's")
    outcome = run(
        any_sandbox,
        """
        import os

        def verify(state, answer):
            with open(WHERE, "wb") as handle:
                for _ in range(1000):
                    handle.write(b"x" * 10 ** 6)
        """,
        "verify",
        WHERE=where,
    )
    assert not outcome.ok
    assert outcome.error.startswith("OSError: [Errno 27] File too large"), outcome.error
    assert_still_serving(any_sandbox)


# -- signals ----------------------------------------------------------------------------------


def test_the_parent_and_other_processes_cannot_be_killed(any_sandbox, victim):
    process = any_sandbox._process
    outcome = run(
        any_sandbox,
        """
        import ctypes, os, signal

        def verify(state, answer):
            libc = ctypes.CDLL(None, use_errno=True)
            parent = os.getppid()

            def pidfd_kill(pid):
                fd = libc.syscall(434, pid, 0)  # pidfd_open
                if libc.syscall(424, fd, 9, None, 0) != 0:  # pidfd_send_signal
                    raise OSError(ctypes.get_errno(), "pidfd_send_signal")

            def sigio_kill(pid):  # ask the kernel to signal pid when a pipe is readable
                reader, writer = os.pipe()
                if libc.fcntl(reader, 8, pid) != 0:  # F_SETOWN
                    raise OSError(ctypes.get_errno(), "F_SETOWN")
                libc.fcntl(reader, 10, 9)  # F_SETSIG: SIGKILL
                libc.fcntl(reader, 4, os.O_ASYNC)  # F_SETFL
                os.write(writer, b"x")

            def tgkill(pid):
                if libc.syscall(234, pid, pid, signal.SIGKILL) != 0:
                    raise OSError(ctypes.get_errno(), "tgkill")

            def ioctl_owner(pid):
                reader, writer = os.pipe()
                if libc.ioctl(reader, 0x8901, ctypes.byref(ctypes.c_int(pid))) != 0:
                    raise OSError(ctypes.get_errno(), "FIOSETOWN")

            attacks = {
                "kill parent": lambda: os.kill(parent, signal.SIGKILL),
                "stop parent": lambda: os.kill(parent, signal.SIGSTOP),
                "kill all": lambda: os.kill(-1, signal.SIGKILL),
                "kill pid 1": lambda: os.kill(1, signal.SIGKILL),
                "killpg parent": lambda: os.killpg(os.getpgid(parent), signal.SIGKILL),
                "kill own group": lambda: os.kill(0, signal.SIGKILL),
                "kill victim": lambda: os.kill(VICTIM, signal.SIGKILL),
                "killpg victim": lambda: os.killpg(VICTIM, signal.SIGKILL),
                "tgkill parent": lambda: tgkill(parent),
                "pidfd parent": lambda: pidfd_kill(parent),
                "sigio parent": lambda: sigio_kill(parent),
                "sigio victim": lambda: sigio_kill(VICTIM),
                "ioctl owner": lambda: ioctl_owner(VICTIM),
            }
            results = {}
            for name, attack in attacks.items():
                try:
                    attack()
                    results[name] = "SENT"
                except Exception as error:
                    results[name] = type(error).__name__
            return results
        """,
        "verify",
        VICTIM=victim.pid,
    )
    assert outcome.ok, outcome.error
    for name, result in outcome.value.items():
        assert result in ("PermissionError", "OSError", "ProcessLookupError"), (name, result)
    assert victim.poll() is None  # the host's process lives
    assert any_sandbox._process is process  # and the worker too: it was never restarted
    assert_still_serving(any_sandbox)
    assert any_sandbox._process is process


def test_raising_a_signal_on_itself_is_only_its_own_end(any_sandbox):
    for body, status in [
        ("os.abort()", "signal 6"),
        ("signal.raise_signal(signal.SIGTERM)", "signal 15"),
        ("os.kill(os.getpid(), signal.SIGKILL)", None),
    ]:
        outcome = run(any_sandbox, f"import os, signal\ndef verify(s, a):\n    {body}", "verify")
        assert not outcome.ok
        if status:
            assert outcome.error == f"exited without a result ({status})"
        else:
            assert outcome.error == "killed (memory limit or signal)"
        assert_still_serving(any_sandbox)


# -- the channel to the host: tool calls and frames -------------------------------------------


def test_huge_tool_call_arguments_are_refused(any_sandbox):
    calls = []

    def echo(text: str) -> int:
        """Echo.

        Args:
            text: Anything.
        """
        calls.append(len(text))
        return len(text)

    outcome = run(
        any_sandbox,
        "def solve(tools):\n    return tools.echo(text='x' * 50_000_000)",
        toolset=Toolset([Tool.from_function(echo)]),
    )
    assert outcome == Outcome(False, error="sent a message over the 1024 KiB limit")
    assert calls == []  # the tool never saw it
    assert_still_serving(any_sandbox)


def test_a_huge_return_value_is_refused(any_sandbox):
    outcome = run(any_sandbox, "def verify(s, a):\n    return 'x' * 5_000_000", "verify")
    assert outcome == Outcome(False, error="sent a message over the 1024 KiB limit")
    assert_still_serving(any_sandbox)


def test_large_messages_within_the_limit_pass_both_ways(any_sandbox):
    def echo(text: str) -> str:
        """Echo.

        Args:
            text: Anything.
        """
        return text + "!"

    outcome = run(
        any_sandbox,
        """
        def solve(tools):
            back = tools.echo(text="y" * 900_000)
            return [len(back), back[-2:]]
        """,
        toolset=Toolset([Tool.from_function(echo)]),
    )
    assert outcome.ok and outcome.value == [900_001, "y!"]
    assert_still_serving(any_sandbox)


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body


FRAMES = {
    "not json": frame(b"hello"),
    "json but not an object": frame(b"[]"),
    "a 4 GB length": b"\xff\xff\xff\xffjunk",
    "a partial header": b"\x00\x00",
    "a done of its own": frame(b'{"op": "done", "status": "exit 0"}'),
    "a run for the worker": frame(b'{"op": "run", "source": "", "entry": "f", "args": []}'),
    "NaN": frame(b'{"op": "result", "ok": true, "value": NaN}'),
    "deep nesting": frame(b"[" * 100000),
    "not utf-8": frame(b"\xff\xfe\xfd\xfc"),
}


@pytest.mark.parametrize("frame", FRAMES.values(), ids=FRAMES.keys())
def test_malformed_frames_on_the_channel_are_rejected(any_sandbox, frame):
    outcome = run(
        any_sandbox,
        """
        import os

        def verify(state, answer):
            os.write(3, FRAME)  # fd 3: the job's channel to the host
            return "sent"
        """,
        "verify",
        FRAME=frame,
    )
    assert not outcome.ok
    assert outcome.error in (
        "sent a malformed message to the host",
        "sent a message over the 1024 KiB limit",
    ), outcome.error
    assert_still_serving(any_sandbox)


def test_forged_tool_call_frames_get_errors_from_the_host(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        import json, os, struct

        def call(message):
            body = json.dumps(message).encode()
            os.write(3, struct.pack(">I", len(body)) + body)
            size = struct.unpack(">I", os.read(0, 4))[0]
            return json.loads(os.read(0, size))

        def solve(tools):
            return [
                call({"op": "call", "tool": "add", "args": "not an object"}),
                call({"op": "call", "tool": 123, "args": {}}),
                call({"op": "call", "tool": "add", "args": {"a": [1], "b": None}}),
                call({"op": "call", "id": "someone-else", "tool": "add", "args": {"a": 1, "b": 2}}),
            ]
        """,
    )
    assert outcome.ok, outcome.error
    assert [reply["op"] for reply in outcome.value] == ["error", "error", "error", "return"]
    assert "arguments must be an object" in outcome.value[0]["message"]
    assert "unknown tool '123'" in outcome.value[1]["message"]
    assert "argument 'a' must be a number, got [1]" in outcome.value[2]["message"]
    assert outcome.value[3]["value"] == 3 and outcome.tool_calls == 4  # counted as its own
    assert_still_serving(any_sandbox)


@pytest.mark.parametrize("sandbox", EVERY)
def test_a_job_that_floods_calls_without_reading_replies_cannot_hang_the_host(sandbox):
    """Big replies the job never reads, while it keeps sending: both pipes fill up."""

    def big() -> str:
        """A big answer."""
        return "x" * 300_000

    worker = Worker(sandbox_named(sandbox), Limits(wall_s=1, cpu_s=1))
    try:
        outcome = run(
            worker,
            """
            import json, os, struct

            def solve(tools):
                body = json.dumps({"op": "call", "tool": "big", "args": {}}).encode()
                while True:
                    os.write(3, struct.pack(">I", len(body)) + body)
            """,
            toolset=Toolset([Tool.from_function(big)]),
        )
        assert not outcome.ok
        assert_still_serving(worker)
    finally:
        worker.close()


def test_tool_arguments_that_are_not_json_raise_in_the_program(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        def solve(tools):
            try:
                tools.add(a={1, 2}, b=1)
            except Exception as error:
                return [type(error).__name__, str(error)]
        """,
    )
    assert outcome.ok
    assert outcome.value == ["ToolError", "add: argument 'a' is not JSON data: a is a set"]
    assert outcome.tool_calls == 0
    assert_still_serving(any_sandbox)


def test_tool_calls_beyond_the_limit_are_refused(quick):
    outcome = run(
        quick,
        """
        def solve(tools):
            results = []
            for i in range(8):
                try:
                    results.append(tools.add(a=i, b=0))
                except Exception as error:
                    results.append(str(error))
            return results
        """,
    )
    assert outcome.ok, outcome.error
    assert outcome.value == [0, 1, 2, 3, 4] + ["more than 5 tool calls"] * 3
    assert outcome.tool_calls == 8
    endless = run(
        quick,
        """
        def solve(tools):
            while True:
                try:
                    tools.add(a=1, b=1)
                except Exception:
                    pass
        """,
    )
    assert not endless.ok and endless.tool_calls > 5
    assert endless.error in ("wall-clock limit of 2s exceeded", "CPU limit of 1s exceeded")
    assert_still_serving(quick)


# -- forging results --------------------------------------------------------------------------


def test_a_verify_cannot_forge_a_result_for_another_job(any_sandbox):
    outcome = run(
        any_sandbox,
        """
        import json, os, struct

        def verify(state, answer):
            for message in [
                {"op": "result", "id": "0123456789abcdef", "ok": True, "value": 1.0},
                {"op": "done", "id": "0123456789abcdef", "status": "exit 0", "output": ""},
            ]:
                body = json.dumps(message).encode()
                os.write(3, struct.pack(">I", len(body)) + body)
            return False
        """,
        "verify",
    )
    assert not outcome.ok  # a second result, or a done of its own: either way, refused
    assert_still_serving(any_sandbox)


def test_a_job_cannot_answer_for_the_next_job(any_sandbox):
    """It says it is done, then waits to read the host's next job and answer it instead."""
    hijack = """
        import json, os, select, struct, sys

        def send(message):
            body = json.dumps(message).encode()
            os.write(3, struct.pack(">I", len(body)) + body)

        def verify(state, answer):
            job = sys._getframe(1).f_locals["job"]
            send({"op": "result", "id": job["id"], "ok": True, "value": 0.0})
            send({"op": "done", "id": job["id"], "status": "exit 0", "output": ""})
            if not select.select([0], [], [], 5)[0]:
                return "nothing to steal"
            size = struct.unpack(">I", os.read(0, 4))[0]
            stolen = json.loads(os.read(0, size))
            send({"op": "result", "id": stolen["id"], "ok": True, "value": 1.0})
            send({"op": "done", "id": stolen["id"], "status": "exit 0", "output": ""})
            os._exit(0)
    """
    outcome = run(any_sandbox, hijack, "verify")
    assert outcome == Outcome(False, error="sent a malformed message to the host")
    honest = run(
        any_sandbox, "def verify(state, answer):\n    return answer == 2", "verify", [{}, 3]
    )
    assert honest == Outcome(True, value=False)
    assert_still_serving(any_sandbox)


def test_the_worker_process_is_out_of_reach(any_sandbox):
    """Its memory and descriptors: with them a job could take over the worker."""
    outcome = run(
        any_sandbox,
        """
        import ctypes, os

        def verify(state, answer):
            parent, results = os.getppid(), {}
            for name in ["mem", "fd/0", "fd/1", "environ", "maps"]:
                try:
                    os.close(os.open("/proc/%d/%s" % (parent, name), os.O_RDONLY))
                    results[name] = "OPENED"
                except OSError as error:
                    results[name] = type(error).__name__
            libc = ctypes.CDLL(None, use_errno=True)
            pidfd = libc.syscall(434, parent, 0)
            results["pidfd_getfd"] = libc.syscall(438, pidfd, 0, 0)
            return results
        """,
        "verify",
    )
    assert outcome.ok, outcome.error
    assert outcome.value.pop("pidfd_getfd") == -1
    assert set(outcome.value.values()) == {"PermissionError"}, outcome.value
    assert_still_serving(any_sandbox)


def test_a_job_that_breaks_the_workers_folder_gets_a_fresh_worker(isolated):
    process = isolated._process
    outcome = run(isolated, "import os\ndef verify(s, a):\n    os.chmod('/tmp', 0)", "verify")
    assert not outcome.ok
    if isolated.sandbox.name == "docker":  # /tmp is root's tmpfs there: nobody cannot break it
        assert outcome.error.startswith("PermissionError: [Errno 1]"), outcome.error
        assert_still_serving(isolated)
        assert isolated._process is process
        return
    assert outcome.error.startswith("the sandbox worker died")
    assert_still_serving(isolated)
    assert isolated._process is not process


def test_links_left_in_the_job_folder_do_not_lead_the_cleanup_astray(any_sandbox, tmp_path):
    """The worker empties the job's folder after it, and must not follow what the job left."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "file").write_text(CANARY)
    (precious / "file").chmod(0o640)
    folder_mode = precious.stat().st_mode
    outcome = run(
        any_sandbox,
        """
        import os

        def verify(state, answer):
            os.symlink(PRECIOUS + "/file", "file-link")
            os.symlink(PRECIOUS, "folder-link")
            os.makedirs("locked/inner")
            os.symlink(PRECIOUS, "locked/inner/link")
            os.symlink(PRECIOUS + "/file", "locked/file-link")
            os.chmod("locked/inner", 0)
            os.chmod("locked", 0)
            return sorted(os.listdir("."))
        """,
        "verify",
        PRECIOUS=str(precious),
    )
    assert outcome.ok and outcome.value == ["file-link", "folder-link", "locked"]
    assert_still_serving(any_sandbox)
    assert (precious / "file").read_text() == CANARY
    assert (precious / "file").stat().st_mode & 0o777 == 0o640
    assert precious.stat().st_mode == folder_mode


@pytest.mark.parametrize(
    "swap",
    [
        "os.symlink('/proc/self/fd/0', '/tmp/output')",  # the worker's own channel
        "os.symlink('/proc/self/fd/1', '/tmp/output')",
        "os.mkfifo('/tmp/output')",
        "os.mkdir('/tmp/output')",
    ],
)
def test_an_output_file_swapped_for_something_else_is_ignored(isolated, swap):
    """Not the subprocess sandbox: the job cannot touch its output file."""
    outcome = run(
        isolated,
        f"import os\ndef verify(s, a):\n    print('x')\n    os.unlink('/tmp/output')\n"
        f"    {swap}\n    return 'swapped'",
        "verify",
    )
    assert outcome == Outcome(True, value="swapped", output="")
    assert_still_serving(isolated)


# -- exits ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("raise SystemExit(3)", "SystemExit: 3 (line 2)"),
        ("import sys\n    sys.exit('bye')", "SystemExit: bye (line 3)"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt:  (line 2)"),
        ("raise BaseException('base')", "BaseException: base (line 2)"),
        ("raise GeneratorExit", "GeneratorExit:  (line 2)"),
        ("import os\n    os._exit(0)", "exited without a result (exit 0)"),
        ("import os\n    os.close(3)\n    return 1", "exited without a result (exit 71)"),
        (
            "class Evil(Exception):\n        def __str__(self):\n            raise Evil()\n"
            "    raise Evil()",
            "exited without a result (exit 72)",
        ),
        ("import sys\n    sys.stdout = None\n    return 1", "exited without a result (exit 71)"),
        ("raise ValueError('x' * 10000)", None),
    ],
)
def test_exits_and_strange_exceptions_are_outcomes(any_sandbox, body, error):
    outcome = run(any_sandbox, f"def verify(state, answer):\n    {body}\n", "verify")
    assert not outcome.ok and outcome.value is None
    if error:
        assert outcome.error == error
    else:
        assert outcome.error.startswith("ValueError: xxx") and len(outcome.error) < 600
    assert_still_serving(any_sandbox)


# -- through the CaT filter -------------------------------------------------------------------


VERIFY_FIVE = "def verify(state, answer):\n    return answer == 5"
FAILURES = ("def solve(tools):\n    return 4",)


def task(task_id: str, solution: str, verify: str = VERIFY_FIVE, failures=FAILURES) -> str:
    return json.dumps(
        {
            "id": task_id,
            "toolset": "calculator",
            "instruction": f"Add 2 and 3 ({task_id}).",
            "verify": code(verify),
            "solution": code(solution),
            "failures": [code(failure) for failure in failures],
        }
    )


HONEST_SOLUTION = "def solve(tools):\n    return tools.add(a=2, b=3)"


@pytest.mark.parametrize("sandbox", ISOLATED)
def test_hostile_tasks_are_rejected_by_the_filter_and_the_run_completes(
    canaries, listener, sandbox
):
    port = listener.getsockname()[1]
    lines = [
        task("honest", HONEST_SOLUTION),
        task("endless", "def solve(tools):\n    while True:\n        pass"),
        task("fork-bomb", "import os\ndef solve(tools):\n    while True:\n        os.fork()"),
        task("memory-bomb", "def solve(tools):\n    return len(bytearray(10 ** 11))"),
        task(
            "kill-parent",
            "import os\ndef solve(tools):\n    os.kill(os.getppid(), 9)\n    return 5",
        ),
        task(
            "phones-home",
            HONEST_SOLUTION,
            "import socket\ndef verify(state, answer):\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n    return True",
        ),
        task(
            "vandal",
            f"def solve(tools):\n    open({str(canaries[0]['repo'])!r}, 'w').write('x')\n"
            "    return tools.add(a=2, b=3)",
        ),
        task(  # a verifier that passes its first call only: it would pass stage 4 for nothing
            "stateful-verify",
            HONEST_SOLUTION,
            """
            import os
            def verify(state, answer):
                if os.path.exists("/tmp/seen"):
                    return False
                open("/tmp/seen", "w").write("1")
                return True
            """,
        ),
        task(  # the solution answers for the verify job that comes after it
            "hijack",
            """
            import json, os, select, struct, sys
            def send(message):
                body = json.dumps(message).encode()
                os.write(3, struct.pack(">I", len(body)) + body)
            def solve(tools):
                job = sys._getframe(1).f_locals["job"]
                send({"op": "result", "id": job["id"], "ok": True, "value": 5})
                send({"op": "done", "id": job["id"], "status": "exit 0", "output": ""})
                while select.select([0], [], [], 5)[0]:  # the checker's next jobs, if it can
                    size = struct.unpack(">I", os.read(0, 4))[0]
                    stolen = json.loads(os.read(0, size))
                    if stolen["entry"] == "verify":  # pass the solution, fail the failures
                        value = stolen["args"][1] == 5
                    else:
                        value = 4 if "return 4" in stolen["source"] else 5
                    send({"op": "result", "id": stolen["id"], "ok": True, "value": value})
                    send({"op": "done", "id": stolen["id"], "status": "exit 0", "output": ""})
                os._exit(0)
            """,
            "def verify(state, answer):\n    return False",
        ),
        task("flood", "def solve(tools):\n    while True:\n        print('x' * 1000)"),
        task("exit", "def solve(tools):\n    raise SystemExit(0)"),
        "this line is not JSON",
    ]
    items = [parse_line(number, line) for number, line in enumerate(lines, 1)]
    done = []
    with SandboxPool(sandbox_named(sandbox), Limits(wall_s=8, cpu_s=2), size=2) as pool:
        report = run_filter(items, pool, on_done=done.append)
    verdicts = {verdict.id: verdict for verdict in report.verdicts}
    assert len(done) == len(lines) == len(report.verdicts)
    assert [verdict.id for verdict in report.kept] == ["honest"]
    expected = {
        "endless": "verify_runs",
        "fork-bomb": "verify_runs",
        "memory-bomb": "verify_runs",
        "kill-parent": "verify_runs",
        "phones-home": "verify_runs",
        "vandal": "verify_runs",
        "stateful-verify": "failures_fail",
        "hijack": "verify_runs",
        "flood": "verify_runs",
        "exit": "verify_runs",
        "line-12": "parses",
    }
    for task_id, stage in expected.items():
        verdict = verdicts[task_id]
        assert not verdict.kept and verdict.stage == stage, (task_id, verdict.to_dict())
        assert verdict.reason, task_id
    assert "PermissionError" in verdicts["phones-home"].reason
    assert "BlockingIOError" in verdicts["fork-bomb"].reason
    assert "malformed message" in verdicts["hijack"].reason
    assert connections(listener) == 0
    assert_canaries_intact(canaries)
