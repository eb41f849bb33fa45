"""The Code-as-Task model and its JSONL store."""

from __future__ import annotations

import json
import os

import pytest

from sc_core.errors import ScError
from sc_core.task import (
    CodeAsTask,
    TaskFormatError,
    content_id,
    parse_line,
    read_tasks,
    write_jsonl,
)

GOOD = {
    "id": "t1",
    "toolset": "calculator",
    "seed": 4,
    "instruction": "What is 2 + 2?",
    "verify": "def verify(state, answer):\n    return answer == 4\n",
    "solution": "def solve(tools):\n    return tools.add(a=2, b=2)\n",
    "failures": ["def solve(tools):\n    return 5\n"],
    "provenance": {"model": "hand", "strategy": "test"},
}


def with_(**changes):
    data = dict(GOOD, **changes)
    return {key: value for key, value in data.items() if value is not ...}


# -- from_dict ---------------------------------------------------------------------------------


def test_from_dict_round_trips():
    task = CodeAsTask.from_dict(GOOD)
    assert task.to_dict() == GOOD
    assert CodeAsTask.from_dict(task.to_dict()) == task


def test_optional_fields_have_defaults():
    task = CodeAsTask.from_dict(with_(seed=..., provenance=...))
    assert task.seed == 0
    assert task.provenance == {}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([GOOD], "a task must be a JSON object"),
        ("a string", "a task must be a JSON object"),
        (with_(toolset=...), "missing field 'toolset'"),
        (with_(instruction=...), "missing field 'instruction'"),
        (with_(verify=...), "missing field 'verify'"),
        (with_(solution=...), "missing field 'solution'"),
        (with_(failures=...), "missing field 'failures'"),
        (with_(toolset=3), "field 'toolset' must be a str"),
        (with_(verify=None), "field 'verify' must be a str"),
        (with_(failures="def solve(tools): pass"), "field 'failures' must be a list"),
        (with_(instruction="   \n"), "the instruction is empty"),
        (with_(failures=[]), "a task needs at least one failure case"),
        (
            with_(failures=["def solve(tools): pass", 3]),
            "every failure case must be a string of code",
        ),
        (with_(seed="4"), "field 'seed' must be an integer"),
        (with_(seed=4.0), "field 'seed' must be an integer"),
        (with_(seed=True), "field 'seed' must be an integer"),
        (with_(provenance=["hand"]), "field 'provenance' must be an object"),
        (with_(id=17), "field 'id' must be a string"),
    ],
)
def test_from_dict_says_what_is_wrong(data, message):
    with pytest.raises(TaskFormatError) as caught:
        CodeAsTask.from_dict(data)
    assert str(caught.value) == message


def test_content_id_when_id_is_missing_or_empty():
    without = CodeAsTask.from_dict(with_(id=...))
    empty = CodeAsTask.from_dict(with_(id=""))
    assert without.id == empty.id == content_id(GOOD)
    assert without.id.startswith("t-") and len(without.id) == 14
    # stable, and it depends on the instruction and code, not on the rest
    assert CodeAsTask.from_dict(with_(id=..., seed=9, failures=["x"])).id == without.id
    assert CodeAsTask.from_dict(with_(id=..., instruction="What is 3 + 1?")).id != without.id
    assert CodeAsTask.from_dict(with_(id=..., verify="def verify(s, a): return 1")).id != (
        without.id
    )


# -- parse_line --------------------------------------------------------------------------------


def test_parse_line_keeps_the_raw_text_and_the_error():
    raw = '{"id": "half", "instruction": '
    item = parse_line(7, raw)
    assert item.task is None and item.raw == raw and item.line == 7
    assert item.error.startswith("not valid JSON")
    assert item.id == "line-7"


def test_parse_line_invalid_task_keeps_its_declared_id():
    item = parse_line(2, json.dumps(with_(failures=[])))
    assert item.task is None
    assert item.error == "a task needs at least one failure case"
    assert item.id == "t1"
    assert parse_line(3, json.dumps(with_(id=..., failures=[]))).id == "line-3"
    assert parse_line(4, "[1, 2]").id == "line-4"


def test_parse_line_survives_absurd_nesting():
    item = parse_line(1, "[" * 100_000)
    assert item.task is None
    assert item.error.startswith("not valid JSON")


# -- read_tasks --------------------------------------------------------------------------------


def test_read_tasks_skips_blank_lines_and_numbers_lines_as_in_the_file(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        "\n" + json.dumps(GOOD) + "\n   \n\t\nnot json\n" + json.dumps(with_(id="t2")),
        encoding="utf-8",
    )
    items = list(read_tasks(path))
    assert [item.line for item in items] == [2, 5, 6]
    assert [item.id for item in items] == ["t1", "line-5", "t2"]
    assert items[0].task == CodeAsTask.from_dict(GOOD)
    assert items[1].raw == "not json"


def test_read_tasks_windows_line_endings(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes((json.dumps(GOOD) + "\r\n" + json.dumps(with_(id="t2")) + "\r\n").encode())
    assert [item.task.id for item in read_tasks(path)] == ["t1", "t2"]


def test_read_tasks_non_utf8_bytes_do_not_stop_the_file(tmp_path):
    path = tmp_path / "latin1.jsonl"
    bad = json.dumps(with_(id="t-latin", instruction="Cost in EUR?")).encode()
    bad = bad.replace(b"EUR", b"\xa4\xff")  # invalid UTF-8 inside a string
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + bad + b"\n" + b"\xff\xfe{oops\n")
    items = list(read_tasks(path))
    assert len(items) == 3
    assert items[0].task.id == "t1"
    assert items[1].task.id == "t-latin"
    assert "\ufffd" in items[1].task.instruction  # replaced, never a crash
    assert items[2].task is None and items[2].error.startswith("not valid JSON")


def test_read_tasks_missing_file_or_directory_is_a_one_line_error(tmp_path):
    with pytest.raises(ScError) as caught:
        list(read_tasks(tmp_path / "nope.jsonl"))
    assert str(caught.value) == f"cannot read task file {tmp_path / 'nope.jsonl'}: " + (
        "No such file or directory"
    )
    with pytest.raises(ScError, match="cannot read task file"):
        list(read_tasks(tmp_path))


def test_read_tasks_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    assert list(read_tasks(path)) == []


# -- write_jsonl -------------------------------------------------------------------------------


def leftovers(directory) -> list[str]:
    return sorted(name for name in os.listdir(directory) if name.endswith(".tmp"))


def test_write_jsonl_round_trip_creating_directories(tmp_path):
    path = tmp_path / "deep" / "er" / "out.jsonl"
    rows = [GOOD, with_(id="t2", instruction="Qu'est-ce que 2 + 2 ? ☃")]
    write_jsonl(path, rows)
    assert [item.task.to_dict() for item in read_tasks(path)] == rows
    assert "☃" in path.read_text(encoding="utf-8")  # UTF-8, not \u escapes
    assert leftovers(path.parent) == []


def test_write_jsonl_replaces_the_whole_file(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"n": n} for n in range(10)])
    write_jsonl(path, [{"n": "new"}])
    assert path.read_text(encoding="utf-8") == '{"n": "new"}\n'
    write_jsonl(path, [])
    assert path.read_text(encoding="utf-8") == ""


def test_write_jsonl_failure_midway_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"n": 1}, {"n": 2}])
    before = path.read_bytes()

    def rows():
        yield {"n": "new 1"}
        yield {"n": "new 2"}
        raise RuntimeError("the producer died")

    with pytest.raises(RuntimeError, match="the producer died"):
        write_jsonl(path, rows())
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []

    with pytest.raises(TypeError):
        write_jsonl(path, [{"n": 3}, {"n": object()}])  # not JSON data
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_written_files_get_the_mode_open_would_give(tmp_path):
    """Not mkstemp's 0600: a run directory is read by others (a team, a web server)."""
    write_jsonl(tmp_path / "atomic.jsonl", [{"n": 1}])
    (tmp_path / "plain.jsonl").write_text("")
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes["atomic.jsonl"] == modes["plain.jsonl"]


def test_write_jsonl_failure_on_a_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "fresh.jsonl"
    with pytest.raises(TypeError):
        write_jsonl(path, [{"bad": {1, 2}}])
    assert not path.exists()
    assert os.listdir(tmp_path) == []


def test_write_jsonl_interrupted_by_keyboard_interrupt_cleans_up(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text("old\n")

    def rows():
        yield {"n": 1}
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_jsonl(path, rows())
    assert path.read_text() == "old\n"
    assert leftovers(tmp_path) == []


def test_write_jsonl_never_shows_a_partial_file(tmp_path):
    """While rows are still being produced, the target holds the complete old content."""
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"n": "old"}])
    seen = []

    def rows():
        for n in range(3):
            seen.append(path.read_text(encoding="utf-8"))
            yield {"n": n}

    write_jsonl(path, rows())
    assert seen == ['{"n": "old"}\n'] * 3
    assert path.read_text(encoding="utf-8") == '{"n": 0}\n{"n": 1}\n{"n": 2}\n'
