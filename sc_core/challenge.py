"""The challenger: a model explores a toolset, then writes Code-as-Tasks in a tagged format.

Strategies are plugins (``register_challengers``); the built-ins are ``explore`` (the paper's:
call the tools first, then write a task) and ``seeded`` (few-shot from example tasks). Every
candidate, parsed or not, goes through the CaT filter; one that does not parse, or that the
challenger declined to write, is rejected at ``parses`` with its raw text and reason kept.

The format a challenger writes::

    <instruction>What a user asks, in plain words, with the concrete values it needs.</instruction>
    <verify>
    def verify(state, answer):
        ...
    </verify>
    <solution>
    def solve(tools):
        ...
    </solution>
    <failure>
    def solve(tools):
        ...
    </failure>          (one to three failure cases)
"""

from __future__ import annotations

import json
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .agent import Agent, AgentConfig
from .errors import ScError
from .models import ModelBackend, SamplingParams
from .task import CodeAsTask, TaskLine, parse_line, write_jsonl
from .toolcalls import signature
from .tools import Toolset, ToolsetSpec

CAT_INSTRUCTIONS = """Now write one new task for these tools, with the code that checks it.

The task is solved by calling `tools.NAME(arg=value, ...)` in Python; a call returns the tool's
JSON result or raises an error. `state` is the environment's JSON state after the solution ran.
{state_line}

Write exactly these parts, in this order:
<instruction>the request a user would make, in plain words, with every value it needs</instruction>
<verify>
def verify(state, answer):
    return ...  # True only if the task was done: check the exact answer and/or the state
</verify>
<solution>
def solve(tools):
    ...  # call the tools and return the answer
</solution>
<failure>
def solve(tools):
    ...  # a plausible but wrong attempt that verify must reject
</failure>
{example}
The tools:
{signatures}"""

FORMAT_EXAMPLES = {
    "stateful": (
        "a to-do list",
        """\
<instruction>Add "buy milk" to my to-do list, then tell me how many items are on it.</instruction>
<verify>
def verify(state, answer):
    texts = [item["text"] for item in state["items"]]
    return "buy milk" in texts and answer == len(texts)
</verify>
<solution>
def solve(tools):
    tools.add_item(text="buy milk")
    return len(tools.list_items())
</solution>
<failure>
def solve(tools):
    return len(tools.list_items())  # the mistake: it never adds the item
</failure>
<failure>
def solve(tools):
    tools.add_item(text="buy bread")  # the mistake: the wrong item
    return len(tools.list_items())
</failure>
""",
    ),
    "stateless": (
        "room areas",
        """\
<instruction>My kitchen is 4.5 m by 3.2 m and my hall is 3 m by 1.5 m. What is their total floor \
area in square metres?</instruction>
<verify>
def verify(state, answer):
    return isinstance(answer, (int, float)) and abs(answer - 18.9) < 0.01
</verify>
<solution>
def solve(tools):
    kitchen = tools.rectangle_area(width=4.5, height=3.2)
    hall = tools.rectangle_area(width=3, height=1.5)
    return kitchen + hall
</solution>
<failure>
def solve(tools):
    return tools.rectangle_area(width=4.5, height=3.2)  # the mistake: it leaves out the hall
</failure>
<failure>
def solve(tools):
    kitchen = tools.rectangle_area(width=4.5, height=2.3)  # the mistake: a wrong value
    hall = tools.rectangle_area(width=3, height=1.5)
    return kitchen + hall
</failure>
""",
    ),
}
"""Worked tasks (what their tools are about, the task) for a strategy that shows no example of its
own (``explore``), one for a toolset that keeps state and one for a toolset that does not.
Without one, the 1.5B exploring a module of two plain functions wrote verifiers that read
``answer`` as a record of the tool call (``answer["arguments"]["celsius"]``) or as a dict
(``answer == {"fahrenheit": 77}``) where the solution returned 77.0: 1 solution of 24 passed its
verifier, against 9 with a worked task. Each failure case says what its mistake is: without
that, the model's failure cases copied its solution (8 of the 9 rejected at ``failures_fail``
gave its answer) and 0 of 24 were kept; with it, 4 were. The tasks are about tools no toolset is
likely to have, so a copy fails the filter's ``parses`` stage (an unknown tool) rather than
teaching nothing. Only ``explore`` shows one: ``seeded`` shows real examples, and there the
answer sentence, with two more hints, cut the calculator tasks kept from 5 of 48 to 2."""


def worked_task(kind: str) -> str:
    """The worked task of :data:`FORMAT_EXAMPLES` for ``kind`` (``stateful`` or ``stateless``),
    as the writing prompt shows it: said to be about other tools, and what ``answer`` is."""
    about, task = FORMAT_EXAMPLES[kind]
    return (
        f"\nA task in this format, for other tools ({about}; do not use them, use only the tools "
        "below).\n`answer` is exactly what the solution returns (a number, a string, a list...), "
        f"never a record of\nthe tool calls:\n{task}"
    )


EXPLORE_PROMPT = (
    "You are exploring a set of tools to learn what they do and what they return. Call the "
    "tools with realistic arguments, one or two at a time, and read the results. When you have "
    "seen enough, reply <answer>done</answer>."
)

WRITE_PREFIX = "<instruction>"
# Code in which "<" never starts a closing tag. Unbounded on purpose: a bounded repetition
# ({1,500}) made vLLM's grammar compiler run for more than ten minutes on a CPU.
_CODE = r"(?:[^<]|<[^/])*"
CAT_REGEX = (  # what follows WRITE_PREFIX in a well-formed task
    r"[^<>\n]{8,300}</instruction>\n"
    rf"<verify>\ndef verify\(state, answer\):\n{_CODE}</verify>\n"
    rf"<solution>\ndef solve\(tools\):\n{_CODE}</solution>\n"
    rf"(?:<failure>\ndef solve\(tools\):\n{_CODE}</failure>\n?){{1,3}}"
)
TAG = re.compile(r"<(instruction|verify|solution|failure)>(.*?)</\1>", re.S)
FENCE = re.compile(r"^```(?:python)?\s*\n?|\n?```\s*$")


def signatures(toolset: Toolset) -> str:
    """One Python-call line per tool, the way solutions call them."""
    return "\n".join(signature(tool.spec(), "tools.") for tool in toolset.tools.values())


def state_example(toolset: Toolset, seed: int, limit: int = 1500) -> str:
    """The state of a fresh reset for ``seed``, as JSON of at most about ``limit`` characters.

    A state too long to show whole keeps the first few entries of every collection (as many as
    fit), rather than its first characters: a task must name things that exist in its
    environment (customers, orders, files), and a model that sees only the start of the first
    collection borrows the rest from the example tasks, which come from other environments.
    """
    toolset.reset(seed)
    state = toolset.state()
    text = json.dumps(state)
    if len(text) <= limit:
        return text
    fitting = json.dumps(_preview(state, 1))
    for items in range(2, 50):
        bigger = json.dumps(_preview(state, items))
        if len(bigger) > limit:
            break
        fitting = bigger
    return fitting


def stateless(example: str) -> bool:
    """Whether a :func:`state_example` is of a toolset that keeps no state."""
    return json.loads(example) in ({}, [], None)


def state_line(example: str) -> str:
    """What the writing prompt says of the environment: its state before the solution runs,
    and that a task names only what exists there; for a toolset that keeps no state, that."""
    if stateless(example):
        return "This toolset keeps no state: `state` is " + example + "."
    return (
        f"Before the solution runs, the state is: {example}\n"
        "Name only things (names, ids) that exist in this state."
    )


def _preview(value: Any, items: int, top: bool = True) -> Any:
    """``value`` with every collection below the top (a list, or an object whose values are all
    lists or objects) cut to its first ``items`` entries and a note of how many more there are;
    records (objects with plain values) stay whole."""
    if isinstance(value, list):
        shown = [_preview(item, items, False) for item in value[:items]]
        return shown + ([f"... {len(value) - items} more"] if len(value) > items else [])
    if not isinstance(value, dict):
        return value
    collection = not top and all(isinstance(item, dict | list) for item in value.values())
    keys = list(value)[:items] if collection else list(value)
    shown = {key: _preview(value[key], items, False) for key in keys}
    if len(value) > len(keys):
        shown["..."] = f"{len(value) - len(keys)} more"
    return shown


def cat_prompt(toolset: Toolset, seed: int, guidance: str = "", example: bool = False) -> str:
    """The request to write one task: the format, a :func:`worked_task` if ``example`` (for a
    strategy that shows none of its own), the tools, a state example, and then ``guidance``
    (``ChallengeConfig.guidance``, such as a curriculum's), last, where a small model reads it
    just before it writes."""
    state = state_example(toolset, seed)
    kind = "stateless" if stateless(state) else "stateful"
    prompt = CAT_INSTRUCTIONS.format(
        signatures=signatures(toolset),
        state_line=state_line(state),
        example=worked_task(kind) if example else "",
    )
    return f"{prompt}\n\n{guidance.strip()}" if guidance.strip() else prompt


def _strip(code: str) -> str:
    return FENCE.sub("", code.strip()).strip() + "\n"


def render_cat(task: CodeAsTask) -> str:
    """A task in the tagged format the challenger writes."""
    failures = "".join(f"<failure>\n{failure.strip()}\n</failure>\n" for failure in task.failures)
    return (
        f"<instruction>{task.instruction}</instruction>\n"
        f"<verify>\n{task.verify.strip()}\n</verify>\n"
        f"<solution>\n{task.solution.strip()}\n</solution>\n{failures}"
    ).strip()


def parse_cat(text: str) -> dict[str, Any]:
    """The tagged parts of a challenger's output; ValueError naming what is missing."""
    parts: dict[str, list[str]] = {}
    for tag, body in TAG.findall(text):
        parts.setdefault(tag, []).append(body)
    missing = [tag for tag in ("instruction", "verify", "solution", "failure") if tag not in parts]
    if missing:
        raise ValueError(f"no <{'>, <'.join(missing)}> section")
    return {
        "instruction": " ".join(parts["instruction"][0].split()),
        "verify": _strip(parts["verify"][0]),
        "solution": _strip(parts["solution"][0]),
        "failures": [_strip(body) for body in parts["failure"][:3]],
    }


@dataclass(frozen=True)
class ChallengeConfig:
    """How challengers sample tasks."""

    explore_turns: int = 4
    """Assistant turns of tool exploration before writing (``explore``)."""
    explore_tokens: int = 192
    """Tokens per exploration turn (``explore``)."""
    explore_total_tokens: int = AgentConfig.max_total_tokens
    """Prompt plus everything after it, per exploration (``explore``)."""
    max_new_tokens: int = 640
    """Tokens for the written task."""
    temperature: float = 0.8
    top_p: float = 0.95
    examples: tuple[CodeAsTask, ...] = ()
    """Example tasks for ``seeded`` (else the toolset's own)."""
    shots: int = 2
    """Examples shown per attempt (``seeded``)."""
    constrained: bool = False
    """Constrain the written task to the tagged format (backends with ``supports_regex``)."""
    chunk: int = 64
    """Attempts generated together. Each chunk is saved before the next starts (see
    ``api.challenge``'s ``attempts_file``), so a killed challenge loses one chunk at most;
    larger chunks keep a big accelerator busier."""
    guidance: str = ""
    """What kind of task to write, said in words and added to every writing prompt (``sc run
    --curriculum`` says which recent tasks were too easy, learnable or too hard). Every
    strategy adds it where it asks for the task; ``cat_prompt(toolset, seed,
    config.guidance)`` does."""


@dataclass
class Attempt:
    """What one challenger attempt produced for one seed, before filtering: a task in the
    tagged format, or a reason to write none (``Attempt(seed, declined="...")``)."""

    seed: int
    text: str = ""
    """The task in the tagged format (:func:`render_cat` writes it, :func:`parse_cat` reads
    it); empty when declined."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    """The conversation that led to it (an exploration), kept in the task's provenance."""
    declined: str | None = None
    """Why the challenger wrote no task for this seed, kept as the rejection reason; None
    when it wrote one."""
    environment: int | None = None
    """The seed of the fresh state the task was written for, when it is not ``seed``: a task
    names things (customers, orders, files) that exist in one environment only, so a strategy
    that shows example tasks writes in their environment. None: ``seed``."""

    def __post_init__(self) -> None:
        if self.declined is None:
            return
        if not isinstance(self.declined, str) or not self.declined.strip():
            raise ValueError(f"seed {self.seed}: declined must be a reason, a non-empty string")
        if self.text:
            raise ValueError(f"seed {self.seed}: a declined attempt has no text")

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Attempt:
        messages = list(row.get("messages") or [])
        environment = row.get("environment")
        environment = None if environment is None else int(environment)
        return cls(int(row["seed"]), str(row["text"]), messages, row.get("declined"), environment)


class Challenger(ABC):
    """A challenger strategy. Plugins register subclasses by name; the contract is
    :func:`sc_core.hookspecs.register_challengers`."""

    name: ClassVar[str]
    needs_model: ClassVar[bool] = True
    """False for a strategy that writes tasks without a model (from templates, say): sc then
    loads none, and the constructor gets ``model=None``."""

    def __init__(self, model: ModelBackend | None, config: ChallengeConfig | None = None):
        self.model = model
        self.config = config or ChallengeConfig()

    @classmethod
    def shown(cls, toolset: ToolsetSpec, config: ChallengeConfig) -> list[CodeAsTask]:
        """The example tasks the strategy shows its model. They are not new: the filter's
        ``unique`` stage rejects a candidate that copies one. None by default."""
        return []

    @property
    def author(self) -> str | None:
        """The model id its tasks' provenance names; None for a strategy without a model."""
        return self.model.model_id if self.model is not None else None

    @abstractmethod
    def attempt(
        self, toolset: ToolsetSpec, seeds: list[int], on_step: Callable[[int], None] | None = None
    ) -> list[Attempt]:
        """One attempt per seed: the text the model wrote and the conversation that led to it."""

    def sampling(self) -> SamplingParams:
        config = self.config
        if config.constrained and not self.model.supports_regex:
            raise ScError(f"the {self.model.name} backend cannot constrain decoding; use vllm")
        regex = CAT_REGEX if config.constrained else None
        return SamplingParams(config.max_new_tokens, config.temperature, config.top_p, regex=regex)

    def write(
        self, agent: Agent, conversations: list[list[dict]], tools: list[list[dict]]
    ) -> list[str]:
        """Generate the task text at the end of each conversation. The reply is started with
        ``<instruction>`` for the model, which keeps small models in the format."""
        prefix = agent.renderer.encode(WRITE_PREFIX)
        prompts = [
            agent.renderer.encode(agent.renderer.text(messages, specs, generation_prompt=True))
            + prefix
            for messages, specs in zip(conversations, tools, strict=True)
        ]
        return [WRITE_PREFIX + g.text for g in self.model.generate(prompts, self.sampling())]

    def candidates(self, toolset: ToolsetSpec, seeds: list[int], **kwargs: Any) -> list[TaskLine]:
        """One attempt per seed, as task lines for the filter."""
        attempts = self.attempt(toolset, seeds, **kwargs)
        return task_lines(attempts, toolset.spec, self.name, self.author)


def task_lines(
    attempts: list[Attempt], toolset: str, strategy: str, model: str | None
) -> list[TaskLine]:
    """Attempts as task lines for the filter, with provenance (``model`` None: no model wrote
    them). One that declined or does not parse is a line without a task that keeps its raw
    text, seed, provenance and reason, so the filter rejects it at ``parses`` with that reason."""
    lines = []
    for number, attempt in enumerate(attempts, 1):
        origin = {
            "toolset": toolset,
            "seed": attempt.seed if attempt.environment is None else attempt.environment,
            "provenance": {"strategy": strategy, "model": model, "exploration": attempt.messages},
        }
        try:
            cat = _parts(attempt)
        except ValueError as error:
            lines.append(TaskLine(number, None, attempt.text, str(error), origin))
            continue
        origin["provenance"]["raw"] = attempt.text
        lines.append(parse_line(number, json.dumps(cat | origin)))
    return lines


def _parts(attempt: Attempt) -> dict[str, Any]:
    """The task an attempt wrote; ValueError with the rejection reason when it wrote none."""
    if attempt.declined:
        raise ValueError(f"declined: {attempt.declined}")
    try:
        return parse_cat(attempt.text)
    except ValueError as error:
        raise ValueError(f"unparseable task: {error}") from None


class AttemptLog:
    """A challenge's attempts on disk, rewritten atomically as chunks of them are made, so that
    a killed challenge resumes where it stopped. Every row names the toolset, strategy and
    model that made it: a log of another challenge is an error, never mixed in."""

    def __init__(self, path: str | os.PathLike, toolset: str, strategy: str):
        self.path = Path(path)
        self.key = {"toolset": toolset, "strategy": strategy}
        self.rows = self._read()

    def _read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        rows = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            try:
                row = json.loads(line)
                Attempt.from_dict(row)
                if "model" not in row or not isinstance(row["model"], str | None):
                    raise ValueError("its model is neither a model id nor null")
            except (ValueError, TypeError, KeyError, AttributeError) as error:
                raise ScError(f"{self.path}:{number}: not a saved attempt ({error})") from None
            if any(row.get(name) != value for name, value in self.key.items()):
                raise ScError(
                    f"{self.path} holds attempts of {row.get('strategy')!r} on "
                    f"{row.get('toolset')!r}, not of this challenge; remove it to start again"
                )
            rows.append(row)
        return rows

    @property
    def model(self) -> str | None:
        """The model that made the saved attempts (None when there are none, or when their
        strategy needs no model)."""
        return self.rows[0]["model"] if self.rows else None

    def attempts(self) -> dict[int, Attempt]:
        return {attempt.seed: attempt for attempt in map(Attempt.from_dict, self.rows)}

    def check(self, model: str | None) -> None:
        """An error unless the saved attempts (if any) were made by ``model``."""
        if self.rows and self.model != model:
            raise ScError(
                f"{self.path} holds attempts by {self.model}, not {model}; remove it to start again"
            )

    def add(self, attempts: list[Attempt], model: str | None) -> None:
        self.check(model)
        self.rows += [self.key | {"model": model} | asdict(attempt) for attempt in attempts]
        write_jsonl(self.path, self.rows)
