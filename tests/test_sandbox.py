"""The sandbox as a service: values, errors, tool calls, worker reuse, pools, isolation of jobs.

Every test runs against both built-in sandboxes: ``bwrap`` (the default) and the weaker
``subprocess``. Limits are generous: the machine may be busy, and nothing here is about speed.
"""

from __future__ import annotations

import os
import signal
import textwrap
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from sc_core.errors import ScError
from sc_core.sandbox import Limits, Outcome, SandboxPool, Worker, get_sandbox
from sc_core.tools import Tool, ToolError, Toolset, load_toolset

SANDBOXES = ["bwrap", "subprocess"]
LIMITS = Limits(wall_s=30, cpu_s=20)


def code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


@pytest.fixture(scope="module", params=SANDBOXES)
def sandbox_name(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def worker(sandbox_name):
    worker = Worker(get_sandbox(sandbox_name), LIMITS)
    yield worker
    worker.close()


@pytest.fixture
def calc() -> Toolset:
    return load_toolset("calculator").create()


def solve(worker: Worker, source: str, toolset: Toolset) -> Outcome:
    return worker.run(code(source), "solve", [], toolset)


def verify(worker: Worker, source: str, state=None, answer=None) -> Outcome:
    return worker.run(code(source), "verify", [state, answer])


# -- values and errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [3, -2.5, "text", True, None, [1, "a", None], {"a": {"b": [1, 2.5, False]}}, "é ü ✓"],
)
def test_returns_json_values(worker, value):
    outcome = verify(worker, f"def verify(state, answer):\n    return {value!r}")
    assert outcome == Outcome(True, value=value, error=None, output="", tool_calls=0)


def test_arguments_reach_the_entry_point(worker):
    state = {"orders": {"O1": {"status": "pending"}}, "n": [1, 2, 3]}
    outcome = verify(
        worker,
        """
        def verify(state, answer):
            return [state["orders"]["O1"]["status"], sum(state["n"]), answer]
        """,
        state,
        "yes",
    )
    assert outcome.ok and outcome.value == ["pending", 6, "yes"]


def test_an_exception_is_an_outcome_with_the_task_line(worker):
    outcome = verify(
        worker,
        """
        def helper(x):
            return 1 / x

        def verify(state, answer):
            return helper(0)
        """,
    )
    assert not outcome.ok and outcome.value is None
    assert outcome.error.startswith("ZeroDivisionError: division by zero")
    assert outcome.error.endswith("(line 2)")  # the innermost line of the task's own code


def test_a_syntax_error_and_a_missing_entry_point_are_outcomes(worker):
    broken = verify(worker, "def verify(state, answer):\n    return (")
    assert not broken.ok and broken.error.startswith("SyntaxError")
    missing = verify(worker, "def something_else():\n    return 1")
    assert not missing.ok and "defines no function 'verify'" in missing.error


def test_printed_output_comes_back(worker):
    outcome = verify(worker, "def verify(state, answer):\n    print('hello', 42)\n    return 1")
    assert outcome.ok and outcome.output == "hello 42\n"


@pytest.mark.parametrize(
    ("expression", "where"),
    [
        ("{1, 2}", "verify() is a set"),
        ("[1, 2, {3}]", "verify()[2] is a set"),
        ("{'x': [float('nan')]}", 'verify()["x"][0] is NaN'),
        ("float('inf')", "verify() is Infinity"),
        ("object()", "verify() is an object"),
        ("lambda: 1", "verify() is a function"),
        ("b'bytes'", "verify() is a bytes"),
        ("{1: 'one'}", "verify() has a key that is not a string: 1"),
        ("__import__('datetime').date(2024, 5, 1)", "verify() is a datetime.date"),
        ("(lambda a: a.append(a) or a)([])", "verify()[0] refers back to a container it is in"),
        (
            "__import__('functools').reduce(lambda v, _: [v], range(100_000), 1)",
            "verify() is nested too deeply",
        ),
    ],
)
def test_the_answer_must_be_json_data(worker, expression, where):
    outcome = verify(worker, f"def verify(state, answer):\n    return {expression}")
    assert not outcome.ok
    assert outcome.error == f"the return value is not JSON data: {where}"


def test_a_tuple_is_an_array_and_a_json_error_of_the_code_is_its_own(worker):
    assert verify(worker, "def verify(state, answer):\n    return (1, (2,))").value == [1, [2]]
    outcome = verify(worker, "def verify(state, answer):\n    raise ValueError('bad JSON')")
    assert outcome.error == "ValueError: bad JSON (line 2)"  # not taken for a return value


# -- tool calls -------------------------------------------------------------------------------


def test_tool_calls_reach_the_host_toolset_by_position_and_keyword(worker):
    calls = []

    def add(a: float, b: float) -> float:
        """Add.

        Args:
            a: First.
            b: Second.
        """
        calls.append((a, b))
        return a + b

    toolset = Toolset([Tool.from_function(add)])
    outcome = solve(
        worker,
        """
        def solve(tools):
            return [tools.add(1, 2), tools.add(a=3, b=4), tools.add(5, b=6.5)]
        """,
        toolset,
    )
    assert outcome.ok and outcome.value == [3, 7, 11.5]
    assert outcome.tool_calls == 3
    assert calls == [(1, 2), (3, 4), (5, 6.5)]  # the tool ran on the host, once per call


def test_tool_results_are_any_json(worker):
    def lookup(key: str) -> dict:
        """Look up.

        Args:
            key: The key.
        """
        return {"key": key, "items": [1, 2.5, None, True], "nested": {"a": ["b"]}}

    toolset = Toolset([Tool.from_function(lookup)])
    outcome = solve(worker, "def solve(tools):\n    return tools.lookup('k')", toolset)
    assert outcome.value == {"key": "k", "items": [1, 2.5, None, True], "nested": {"a": ["b"]}}


def test_a_tool_result_that_is_not_json_data_raises_inside_the_program(worker):
    def due(task: str) -> dict:
        """When a task is due.

        Args:
            task: The task.
        """
        return {"task": task, "dates": [__import__("datetime").date(2024, 5, 1)]}

    outcome = solve(
        worker, "def solve(tools):\n    return tools.due('tax')", Toolset([Tool.from_function(due)])
    )
    assert not outcome.ok
    assert outcome.error == (
        'ToolError: due\'s result is not JSON data: result["dates"][0] is a datetime.date (line 2)'
    )


def test_arguments_that_are_not_json_data_raise_inside_the_program(worker, calc):
    outcome = solve(
        worker,
        """
        def solve(tools):
            try:
                tools.add(a=[1, {2}], b=1)
            except Exception as error:
                return [type(error).__name__, str(error)]
        """,
        calc,
    )
    assert outcome.ok, outcome.error
    assert outcome.value == ["ToolError", "add: argument 'a' is not JSON data: a[1] is a set"]
    assert outcome.tool_calls == 0  # refused in the sandbox, nothing reached the host


def test_an_unknown_tool_raises_inside_the_program(worker, calc):
    outcome = solve(
        worker,
        """
        def solve(tools):
            try:
                tools.launch_missiles(target="everywhere")
            except Exception as error:
                return [type(error).__name__, str(error)]
        """,
        calc,
    )
    assert outcome.ok and outcome.value == ["ToolError", "unknown tool 'launch_missiles'"]
    assert outcome.tool_calls == 0  # refused in the sandbox, nothing reached the host
    private = solve(worker, "def solve(tools):\n    return tools._secret()", calc)
    assert not private.ok and "unknown tool '_secret'" in private.error


def test_a_tool_error_is_catchable_inside_the_program(worker, calc):
    outcome = solve(
        worker,
        """
        def solve(tools):
            try:
                tools.divide(a=1, b=0)
            except Exception as error:
                caught = [type(error).__name__, str(error)]
            return caught + [tools.divide(a=1, b=4)]
        """,
        calc,
    )
    assert outcome.ok and outcome.value == ["ToolError", "division by zero", 0.25]
    assert outcome.tool_calls == 2


def test_an_uncaught_tool_error_fails_the_program_with_its_line(worker, calc):
    outcome = solve(worker, "def solve(tools):\n    x = 1\n    return tools.sqrt(x=-1)", calc)
    assert not outcome.ok
    assert outcome.error == "ToolError: square root of a negative number (line 3)"
    assert outcome.tool_calls == 1


def test_bad_tool_arguments_raise_inside_the_program(worker, calc):
    outcome = solve(
        worker,
        """
        def solve(tools):
            seen = []
            for attempt in (
                lambda: tools.add(1, 2, 3),
                lambda: tools.add(1, a=2),
                lambda: tools.add(a=1),
                lambda: tools.add(a=1, b=2, c=3),
                lambda: tools.add(a="one", b=2),
            ):
                try:
                    attempt()
                except Exception as error:
                    seen.append(type(error).__name__ + ": " + str(error))
            return seen
        """,
        calc,
    )
    assert outcome.ok
    assert outcome.value == [
        "ToolError: add takes at most 2 positional arguments",
        "ToolError: add got two values for 'a'",
        "ToolError: add: missing argument(s) b",
        "ToolError: add: unknown argument(s) c",
        "ToolError: add: argument 'a' must be a number, got \"one\"",
    ]


def test_a_tool_that_fails_on_the_host_raises_tool_error_in_the_program(worker):
    def explode(x: int) -> int:
        """Explode.

        Args:
            x: Anything.
        """
        raise RuntimeError("host-side failure")

    def refuse(x: int) -> int:
        """Refuse.

        Args:
            x: Anything.
        """
        raise ToolError("not allowed")

    toolset = Toolset([Tool.from_function(explode), Tool.from_function(refuse)])
    outcome = solve(
        worker,
        """
        def solve(tools):
            out = []
            for call in (tools.explode, tools.refuse):
                try:
                    call(x=1)
                except Exception as error:
                    out.append(str(error))
            return out
        """,
        toolset,
    )
    assert outcome.value == ["explode failed: RuntimeError: host-side failure", "not allowed"]


def test_verify_runs_without_tools(worker):
    outcome = verify(worker, "def verify(state, answer):\n    return state == {} and answer", {}, 1)
    assert outcome.ok and outcome.value == 1 and outcome.tool_calls == 0


# -- the worker: reuse, restart, pool ---------------------------------------------------------


def test_the_worker_is_reused_across_jobs(worker, calc):
    first = solve(worker, "def solve(tools):\n    import os\n    return os.getppid()", calc)
    process = worker._process
    for _ in range(5):
        again = solve(worker, "def solve(tools):\n    import os\n    return os.getppid()", calc)
        assert again.ok and again.value == first.value  # the same worker forked every job
    assert worker._process is process


def test_the_worker_is_restarted_after_it_dies(sandbox_name, calc):
    worker = Worker(get_sandbox(sandbox_name), LIMITS)
    try:
        assert solve(worker, "def solve(tools):\n    return tools.add(a=1, b=2)", calc).value == 3
        dead = worker._process
        os.killpg(dead.process.pid, signal.SIGKILL)  # the worker dies between jobs
        dead.process.wait()
        outcomes = [solve(worker, "def solve(tools):\n    return tools.add(a=2, b=2)", calc)]
        if not outcomes[0].ok:  # the job that finds it dead may fail, with a reason
            assert "sandbox" in outcomes[0].error
            outcomes.append(
                solve(worker, "def solve(tools):\n    return tools.add(a=2, b=2)", calc)
            )
        assert outcomes[-1].ok and outcomes[-1].value == 4
        assert worker._process is not dead
    finally:
        worker.close()


def test_close_then_run_starts_a_fresh_worker(sandbox_name):
    worker = Worker(get_sandbox(sandbox_name), LIMITS)
    try:
        assert verify(worker, "def verify(s, a):\n    return 1").value == 1
        worker.close()
        assert worker._process is None
        assert verify(worker, "def verify(s, a):\n    return 2").value == 2
    finally:
        worker.close()


def test_a_pool_serves_several_threads(sandbox_name):
    spec = load_toolset("calculator")
    local = threading.local()
    source = code(
        """
        def solve(tools):
            total = 0
            for i in range(N):
                total = tools.add(a=total, b=i)
            return total
        """
    )

    def job(n: int) -> tuple[int, Outcome]:
        if not hasattr(local, "toolset"):
            local.toolset = spec.create()
        with pool.worker() as worker:
            return n, worker.run(source.replace("N", str(n)), "solve", [], local.toolset)

    with SandboxPool(get_sandbox(sandbox_name), LIMITS, size=2) as pool:
        with ThreadPoolExecutor(max_workers=4) as executor:
            results = list(executor.map(job, range(12)))
        workers = {id(worker._process) for worker in pool._all}
    for n, outcome in results:
        assert outcome.ok, outcome.error
        assert outcome.value == sum(range(n)) and outcome.tool_calls == n
    assert len(workers) == 2
    assert all(worker._process is None for worker in pool._all)  # closed with the pool


# -- which sandbox ----------------------------------------------------------------------------


def test_only_the_subprocess_sandbox_says_it_is_weaker():
    weaker = get_sandbox("subprocess").weaker
    assert isinstance(weaker, str) and "no namespaces" in weaker
    assert get_sandbox("bwrap").weaker is None


def test_an_unknown_sandbox_is_an_error():
    with pytest.raises(ScError, match="unknown sandbox 'nope'"):
        get_sandbox("nope")


# -- nothing is shared between jobs -----------------------------------------------------------


def test_a_global_set_in_one_job_is_gone_in_the_next(worker):
    set_them = verify(
        worker,
        """
        import builtins, math, sys
        COUNTER = []

        def verify(state, answer):
            COUNTER.append(1)
            builtins.LEAK = "from job one"
            math.LEAK = "from job one"
            sys.modules["leak"] = "from job one"
            return len(COUNTER)
        """,
    )
    assert set_them.ok and set_them.value == 1
    look = verify(
        worker,
        """
        import builtins, math, sys

        def verify(state, answer):
            return [
                hasattr(builtins, "LEAK"),
                hasattr(math, "LEAK"),
                "leak" in sys.modules,
                "COUNTER" in globals(),
            ]
        """,
    )
    assert look.ok and look.value == [False, False, False, False]


def test_a_file_written_in_one_jobs_directory_is_gone_in_the_next(worker):
    wrote = verify(
        worker,
        """
        import os

        def verify(state, answer):
            with open("notes.txt", "w") as handle:
                handle.write("job one was here")
            os.mkdir("sub")
            with open("sub/more.txt", "w") as handle:
                handle.write("and here")
            return [os.getcwd(), sorted(os.listdir("."))]
        """,
    )
    assert wrote.ok and wrote.value[1] == ["notes.txt", "sub"]
    look = verify(
        worker,
        """
        import os

        def verify(state, answer):
            return [os.getcwd(), os.listdir("."), os.path.exists("notes.txt")]
        """,
    )
    assert look.ok and look.value == [wrote.value[0], [], False]


def test_a_locked_directory_left_by_one_job_does_not_break_the_next(worker):
    trap = verify(
        worker,
        """
        import os

        def verify(state, answer):
            os.makedirs("a/b/c")
            with open("a/b/c/f", "w") as handle:
                handle.write("x")
            os.chmod("a/b", 0)
            os.chmod("a", 0)
            return "locked"
        """,
    )
    assert trap.ok and trap.value == "locked"
    look = verify(worker, "import os\ndef verify(state, answer):\n    return os.listdir('.')")
    assert look.ok and look.value == []


def test_files_elsewhere_in_the_sandbox_tmp_do_not_survive_the_job():
    """bwrap only: the subprocess sandbox's /tmp is the host's own."""
    worker = Worker(get_sandbox("bwrap"), LIMITS)
    try:
        wrote = verify(
            worker,
            """
            def verify(state, answer):
                with open("/tmp/counter", "w") as handle:
                    handle.write("1")
                return "written"
            """,
        )
        assert wrote.ok, wrote.error
        look = verify(
            worker,
            "import os\ndef verify(state, answer):\n    return os.path.exists('/tmp/counter')",
        )
        assert look.ok and look.value is False
    finally:
        worker.close()
