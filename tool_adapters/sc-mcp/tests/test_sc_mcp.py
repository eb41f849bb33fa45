"""sc-mcp against a real MCP server process (tests/fixtures/notes_server.py), over stdio and
streamable HTTP, in process and through the real ``sc`` CLI."""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sc_mcp.adapter import mcp_toolset, parse_target

from sc_core.errors import ScError
from sc_core.tools import ToolError, load_toolset

SERVER = Path(__file__).resolve().parent / "fixtures" / "notes_server.py"
STDIO = "stdio:" + shlex.join([sys.executable, str(SERVER)])
SC = Path(sys.executable).parent / "sc"
NOTES_TOOLS = ["put_note", "get_note", "list_notes", "note_stats", "fail", "crash", "hang"]
BOUND_S = 60  # "bounded": far above the few seconds these take, far below a hang


def run_sc(*args: str, env: dict[str, str] | None = None, timeout: float = 180):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    full_env.update(env or {})
    command = [str(SC)] if SC.exists() else [sys.executable, "-m", "sc_core.cli"]
    return subprocess.run(
        [*command, *args], capture_output=True, text=True, env=full_env, timeout=timeout
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def http_server(tmp_path: Path):
    """The notes server on streamable HTTP, on a free loopback port; yields its URL."""
    port = free_port()
    log = (tmp_path / f"server-{port}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, str(SERVER), "--http", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"the HTTP server exited: {Path(log.name).read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("the HTTP server did not start listening within 30 s")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


@pytest.fixture(scope="module")
def stdio_factory():
    return mcp_toolset(STDIO, call_timeout=3)


@pytest.fixture
def notes(stdio_factory):
    toolset = stdio_factory()
    yield toolset
    toolset.close()


# -- specs --------------------------------------------------------------------------------------


def test_spec_forms():
    assert parse_target("stdio:python 'my server.py' --db x").argv == (
        "python",
        "my server.py",
        "--db",
        "x",
    )
    assert parse_target("http://127.0.0.1:8000/mcp").url == "http://127.0.0.1:8000/mcp"
    for bad, message in [
        ("stdio:", "no command given"),
        ("stdio:python 'open", "cannot split the command"),
        ("ftp://host/x", "unknown form"),
        ("http:", "not a URL"),
        ("", "needs a server"),
    ]:
        with pytest.raises(ScError, match=message):
            mcp_toolset(bad)


# -- a stdio server, in process -----------------------------------------------------------------


def test_tools_come_from_list_tools_and_hide_the_state_tools(notes):
    assert list(notes.tools) == NOTES_TOOLS
    put = notes.tools["put_note"]
    assert put.description == "Store a note under a key, replacing any note already there."
    assert put.parameters == {
        "type": "object",
        "properties": {"key": {"type": "string"}, "text": {"type": "string"}},
        "required": ["key", "text"],
    }
    assert "sc_reset" not in notes.tools and "sc_state" not in notes.tools


def test_calls_reset_and_state(notes):
    notes.reset(3)
    assert notes.state()["notes"] == {"welcome": "hello from seed 3"}
    assert notes.call("put_note", {"key": "todo", "text": "buy milk now"}) == "stored todo"
    assert notes.call("list_notes", {}) == ["todo", "welcome"]  # structured, unwrapped
    assert notes.call("note_stats", {"key": "todo"}) == {"words": 3, "chars": 12}
    assert notes.call("get_note", {"key": "todo"}) == "buy milk now"
    assert notes.state()["notes"] == {"welcome": "hello from seed 3", "todo": "buy milk now"}
    notes.reset(3)
    assert notes.state()["notes"] == {"welcome": "hello from seed 3"}


def test_every_instance_owns_its_server(stdio_factory):
    first, second = stdio_factory(), stdio_factory()
    try:
        first.reset(1)
        second.reset(1)
        first.call("put_note", {"key": "only-here", "text": "x"})
        assert "only-here" not in second.state()["notes"]
        assert first.state()["pid"] != second.state()["pid"]
    finally:
        first.close()
        second.close()


def test_tool_errors_carry_the_servers_message(notes):
    notes.reset(0)
    with pytest.raises(ToolError, match="refused: out of stock"):
        notes.call("fail", {"reason": "out of stock"})
    with pytest.raises(ToolError, match="no note 'nope'"):
        notes.call("get_note", {"key": "nope"})
    assert notes.call("list_notes", {}) == ["welcome"]  # the session is fine afterwards


def test_a_crash_mid_episode_is_a_tool_error_then_calls_fail_fast_then_reset_restarts(notes):
    notes.reset(2)
    pid = notes.state()["pid"]
    started = time.monotonic()
    with pytest.raises(ToolError, match=r"crash: the MCP server exited \(crashed\?\)") as caught:
        notes.call("crash", {})
    assert "crashing on purpose" in str(caught.value)  # the tail of its stderr
    with pytest.raises(ToolError, match="exited"):
        notes.call("list_notes", {})
    with pytest.raises(ToolError, match="no state"):
        notes.state()
    assert time.monotonic() - started < BOUND_S
    notes.reset(2)  # a fresh server
    state = notes.state()
    assert state["notes"] == {"welcome": "hello from seed 2"} and state["pid"] != pid


def test_a_server_that_stops_answering_times_out():
    toolset = mcp_toolset(STDIO, call_timeout=1)()
    try:
        toolset.reset(0)
        started = time.monotonic()
        with pytest.raises(ToolError, match="did not answer within 1 s"):
            toolset.call("hang", {"seconds": 30})
        with pytest.raises(ToolError, match="did not answer"):
            toolset.call("list_notes", {})  # fails at once, no second wait
        assert time.monotonic() - started < 1 + 5 + 5
        toolset.reset(0)
        assert toolset.call("list_notes", {}) == ["welcome"]
    finally:
        toolset.close()


def test_the_scheme_is_registered_through_the_entry_point():
    toolset = load_toolset(f"mcp:{STDIO}").create()
    try:
        assert list(toolset.tools) == NOTES_TOOLS
    finally:
        toolset.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stdio:no-such-command-xyz --flag", "cannot start 'no-such-command-xyz'"),
        (
            "stdio:"
            + shlex.join([sys.executable, "-c", "import sys; sys.exit('cannot open the db')"]),
            "exited during start-up; its stderr ends: cannot open the db",
        ),
        (f"stdio:{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'", "within 1 s"),
    ],
)
def test_a_server_that_does_not_start_is_a_one_line_error_in_bounded_time(spec, message):
    started = time.monotonic()
    with pytest.raises(ScError) as caught:
        mcp_toolset(spec, start_timeout=1)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)
    assert time.monotonic() - started < BOUND_S


# -- streamable HTTP ------------------------------------------------------------------------------


def test_streamable_http_sessions(tmp_path):
    with http_server(tmp_path) as url:
        factory = mcp_toolset(url, call_timeout=5)
        first, second = factory(), factory()
        try:
            assert list(first.tools) == NOTES_TOOLS
            first.reset(7)
            assert first.call("put_note", {"key": "k", "text": "a b"}) == "stored k"
            assert first.call("note_stats", {"key": "k"}) == {"words": 2, "chars": 3}
            with pytest.raises(ToolError, match="refused: nope"):
                first.call("fail", {"reason": "nope"})
            # one server process: its sessions share its state
            assert second.state()["notes"] == {"welcome": "hello from seed 7", "k": "a b"}
            started = time.monotonic()
            with pytest.raises(ToolError, match=r"crash: .*connection.*\(crashed\?\)"):
                first.call("crash", {})
            with pytest.raises(ToolError):
                second.call("list_notes", {})
            with pytest.raises(ToolError, match="cannot restart"):
                first.reset(7)
            assert time.monotonic() - started < BOUND_S
        finally:
            first.close()
            second.close()


def test_http_connection_refused_is_a_one_line_error():
    with pytest.raises(ScError, match="cannot connect to the MCP server") as caught:
        mcp_toolset(f"http://127.0.0.1:{free_port()}/mcp", start_timeout=5)
    assert "\n" not in str(caught.value)


# -- through the real CLI ------------------------------------------------------------------------


def test_sc_tools_json_over_stdio():
    result = run_sc("tools", f"mcp:{STDIO}", "--json")
    assert result.returncode == 0, result.stderr
    specs = json.loads(result.stdout)
    assert [spec["function"]["name"] for spec in specs] == NOTES_TOOLS
    assert specs[0]["function"]["parameters"]["required"] == ["key", "text"]


def test_sc_tools_bad_command_is_one_line_in_bounded_time():
    started = time.monotonic()
    result = run_sc("tools", "mcp:stdio:no-such-command-xyz", timeout=BOUND_S)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: mcp:stdio:no-such-command-xyz: cannot start 'no-such-command-xyz': "
        "No such file or directory"
    )
    result = run_sc(
        "tools",
        f"mcp:stdio:{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'",
        env={"SC_MCP_START_TIMEOUT": "1"},
        timeout=BOUND_S,
    )
    assert result.returncode == 1
    assert "did not answer within 1 s" in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - started < BOUND_S


def task(task_id, solution, failures, verify, seed=0, toolset=f"mcp:{STDIO}"):
    return {
        "id": task_id,
        "toolset": toolset,
        "seed": seed,
        "instruction": f"task {task_id}",
        "verify": verify,
        "solution": solution,
        "failures": failures,
    }


KEPT = [
    task(
        "notes-put",
        "def solve(tools):\n    tools.put_note(key='todo', text='buy milk')\n"
        "    return tools.list_notes()\n",
        [
            "def solve(tools):\n    return tools.list_notes()\n",
            "def solve(tools):\n    tools.put_note(key='todo', text='buy bread')\n"
            "    return tools.list_notes()\n",
        ],
        "def verify(state, answer):\n"
        "    return state['notes'].get('todo') == 'buy milk' and answer == ['todo', 'welcome']\n",
        seed=3,
    ),
    task(
        "notes-seeded",
        "def solve(tools):\n    return tools.get_note(key='welcome')\n",
        ["def solve(tools):\n    return 'hello from seed 0'\n"],
        "def verify(state, answer):\n    return answer == 'hello from seed 5'\n",
        seed=5,
    ),
    task(
        "notes-stats",
        "def solve(tools):\n    return tools.note_stats(key='welcome')['words']\n",
        ["def solve(tools):\n    return len('hello from seed 0')\n"],
        "def verify(state, answer):\n    return answer == 4\n",
    ),
    task(
        "error-seen",
        "def solve(tools):\n    try:\n        tools.get_note(key='nope')\n"
        "    except Exception as error:\n        return str(error)\n",
        ["def solve(tools):\n    return 'fine'\n"],
        "def verify(state, answer):\n    return \"no note 'nope'\" in answer\n",
    ),
]
REJECTED = [
    task(
        "refused",
        "def solve(tools):\n    return tools.fail(reason='no stock')\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return True\n",
    ),
    task(
        "lenient",
        "def solve(tools):\n    return tools.list_notes()\n",
        ["def solve(tools):\n    return []\n"],
        "def verify(state, answer):\n    return True\n",
    ),
    task(
        "hidden-tool",
        "def solve(tools):\n    return tools.sc_state()\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return True\n",
    ),
]


def write_tasks(path: Path, rows) -> Path:
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def check_report(result):
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return report, {row["id"]: row for row in report["tasks"]}


def test_sc_verify_over_stdio_keeps_and_rejects(tmp_path):
    tasks = write_tasks(tmp_path / "tasks.jsonl", KEPT + REJECTED)
    report, verdicts = check_report(run_sc("verify", str(tasks), "--json", "--workers", "2"))
    assert {name for name, row in verdicts.items() if row["kept"]} == {t["id"] for t in KEPT}
    assert verdicts["refused"]["stage"] == "verify_runs"
    assert "refused: no stock" in verdicts["refused"]["reason"]
    assert verdicts["lenient"]["stage"] == "failures_fail"
    assert verdicts["hidden-tool"]["stage"] == "parses"
    assert "sc_state" in verdicts["hidden-tool"]["reason"]
    assert report["kept"] == len(KEPT)


def test_sc_verify_survives_a_crash_and_a_hang(tmp_path):
    crash = task(
        "crash",
        "def solve(tools):\n    return tools.crash()\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return True\n",
    )
    hang = task(
        "hang",
        "def solve(tools):\n    return tools.hang(seconds=60)\n",
        ["def solve(tools):\n    return None\n"],
        "def verify(state, answer):\n    return True\n",
    )
    tasks = write_tasks(tmp_path / "tasks.jsonl", [crash, KEPT[1], hang, KEPT[0]])
    started = time.monotonic()
    result = run_sc(
        "verify",
        str(tasks),
        "--json",
        "--workers",
        "1",
        env={"SC_MCP_CALL_TIMEOUT": "2"},
        timeout=BOUND_S * 2,
    )
    report, verdicts = check_report(result)
    assert time.monotonic() - started < BOUND_S * 2
    assert not verdicts["crash"]["kept"] and verdicts["crash"]["stage"] == "verify_runs"
    assert "crash" in verdicts["crash"]["reason"]
    assert not verdicts["hang"]["kept"] and "did not answer" in verdicts["hang"]["reason"]
    # the same toolset instance goes on, on a restarted server
    assert verdicts["notes-seeded"]["kept"] and verdicts["notes-put"]["kept"]


def test_sc_tools_and_verify_over_streamable_http(tmp_path):
    with http_server(tmp_path) as url:
        result = run_sc("tools", f"mcp:{url}", "--json")
        assert result.returncode == 0, result.stderr
        assert [spec["function"]["name"] for spec in json.loads(result.stdout)] == NOTES_TOOLS
        tasks = write_tasks(tmp_path / "tasks.jsonl", KEPT + REJECTED)
        # one server holds one state for all its sessions: one worker at a time
        report, verdicts = check_report(
            run_sc("verify", str(tasks), "--tools", f"mcp:{url}", "--json", "--workers", "1")
        )
        assert {name for name, row in verdicts.items() if row["kept"]} == {t["id"] for t in KEPT}
        assert verdicts["lenient"]["stage"] == "failures_fail"
