"""The Code-as-Task: one JSON line holding an instruction and the code that checks it.

Fields: ``id``, ``toolset`` (spec), ``seed``, ``instruction``, ``verify`` (source defining
``verify(state, answer)``, returning a bool or a float in [0, 1]), ``solution`` (source defining
``solve(tools)``, returning the answer), ``failures`` (at least one source with the solution's
signature that must NOT pass), ``provenance`` (who wrote it, how), and optionally ``lenient``
(the kinds of sc's derived wrong answers the instruction allows, see :mod:`sc_core.strict`).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ScError
from .strict import KINDS

REQUIRED = {"toolset": str, "instruction": str, "verify": str, "solution": str, "failures": list}


class TaskFormatError(ValueError):
    """A task line that is not a well-formed Code-as-Task; the message says why."""


@dataclass
class CodeAsTask:
    """A task the model wrote for itself, with its verifier and worked (and wrong) solutions."""

    id: str
    toolset: str
    seed: int
    instruction: str
    verify: str
    solution: str
    failures: list[str]
    provenance: dict[str, Any] = field(default_factory=dict)
    lenient: list[str] = field(default_factory=list)
    """Kinds of derived wrong answers (:data:`sc_core.strict.KINDS`) the verifier may accept,
    because the instruction allows them: the ``verifier_strict`` stage skips those."""

    @classmethod
    def from_dict(cls, data: Any) -> CodeAsTask:
        """Validate a decoded JSON object; raises TaskFormatError with the first problem."""
        if not isinstance(data, dict):
            raise TaskFormatError("a task must be a JSON object")
        for name, kind in REQUIRED.items():
            if name not in data:
                raise TaskFormatError(f"missing field {name!r}")
            if not isinstance(data[name], kind):
                raise TaskFormatError(f"field {name!r} must be a {kind.__name__}")
        if not data["instruction"].strip():
            raise TaskFormatError("the instruction is empty")
        if not data["failures"]:
            raise TaskFormatError("a task needs at least one failure case")
        if not all(isinstance(source, str) for source in data["failures"]):
            raise TaskFormatError("every failure case must be a string of code")
        seed = data.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TaskFormatError("field 'seed' must be an integer")
        provenance = data.get("provenance", {})
        if not isinstance(provenance, dict):
            raise TaskFormatError("field 'provenance' must be an object")
        lenient = data.get("lenient", [])
        if not isinstance(lenient, list) or not all(isinstance(kind, str) for kind in lenient):
            raise TaskFormatError("field 'lenient' must be a list of strings")
        unknown = [kind for kind in lenient if kind not in KINDS]
        if unknown:
            raise TaskFormatError(
                f"field 'lenient': unknown kind {unknown[0]!r} (known: {', '.join(KINDS)})"
            )
        task_id = data.get("id") or content_id(data)
        if not isinstance(task_id, str):
            raise TaskFormatError("field 'id' must be a string")
        fields = {name: data[name] for name in REQUIRED}
        return cls(id=task_id, seed=seed, provenance=provenance, lenient=lenient, **fields)

    def to_dict(self) -> dict[str, Any]:
        """The task as a JSON object; ``lenient`` only where it is set, so that task files are
        saved as they were written."""
        data = asdict(self)
        if not self.lenient:
            del data["lenient"]
        return data


def content_id(data: dict[str, Any]) -> str:
    """A stable id for a task written without one."""
    text = json.dumps([data.get(name) for name in ("instruction", "verify", "solution")])
    return "t-" + hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class TaskLine:
    """One line of a task file: the task, or why it is not one (with the raw text kept)."""

    line: int
    task: CodeAsTask | None
    raw: str
    error: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)
    """Where a line that is not a task came from (a challenger's seed and provenance), kept in
    its rejection row."""

    @property
    def id(self) -> str:
        """The task's id; for a rejected line, the id it declares, else ``line-N``."""
        if self.task:
            return self.task.id
        try:
            declared = json.loads(self.raw).get("id")
        except (ValueError, AttributeError, RecursionError):
            declared = None
        return declared if isinstance(declared, str) and declared else f"line-{self.line}"


def parse_line(number: int, raw: str) -> TaskLine:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as error:  # RecursionError: nested too deeply
        return TaskLine(number, None, raw, f"not valid JSON: {error}")
    try:
        return TaskLine(number, CodeAsTask.from_dict(data), raw)
    except TaskFormatError as error:
        return TaskLine(number, None, raw, str(error))


def read_tasks(path: str | os.PathLike) -> Iterator[TaskLine]:
    """Every non-blank line of a JSONL task file, parsed or with its error."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().split("\n")
    except OSError as error:
        raise ScError(f"cannot read task file {path}: {error.strerror}") from error
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            yield parse_line(number, raw)


def _file_mode() -> int:
    """The mode ``open()`` gives a new file under the process's umask. Read once, at import:
    reading the umask sets it for a moment, which threads could see."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write a file atomically: readers see the old file or the whole new one, never a part.
    The file gets the mode a plain ``open()`` would give it (mkstemp's own is 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> None:
    """Rows as JSON lines, written atomically."""
    write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def write_json(path: str | os.PathLike, data: Any) -> None:
    """One JSON document, written atomically."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
