"""The challenger (sc_core.challenge and the built-in strategies) on a scripted backend.

The tagged Code-as-Task format is parsed and rendered; the ``explore`` and ``seeded`` strategies
run against a backend that replies from a script (with the real SmolLM2 tokenizer and chat
template), and what they write goes through the real CaT filter in the sandbox. ``sc challenge``
runs in process with the same scripted backend in place of the model (exact outcomes), and once
as a user runs it with the real embedded model (the output's shape only: about a minute).
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
from click.testing import CliRunner

import sc_core.api as api_module
import sc_core.cli as cli_module
from sc_core.challenge import (
    CAT_INSTRUCTIONS,
    EXPLORE_PROMPT,
    WRITE_PREFIX,
    Attempt,
    ChallengeConfig,
    Challenger,
    parse_cat,
    render_cat,
    signatures,
    state_example,
    state_line,
    task_lines,
    worked_task,
)
from sc_core.default_plugins.challengers import ExploreChallenger, SeededChallenger
from sc_core.errors import ScError
from sc_core.models import Generation, ModelBackend, SamplingParams
from sc_core.plugins import registry
from sc_core.run import Run, RunConfig
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import CodeAsTask, TaskLine
from sc_core.tools import load_toolset
from sc_core.verify import run_filter

MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
if not (MODEL_DIR / "tokenizer.json").is_file():
    pytest.skip(
        f"the converted SmolLM2 tokenizer is missing at {MODEL_DIR} (run `sc models` or load "
        "the smollm2 model once to create it)",
        allow_module_level=True,
    )

from transformers import AutoTokenizer  # noqa: E402  (after the skip: slow import)

TOKENIZER = AutoTokenizer.from_pretrained(MODEL_DIR)
FIXTURES = Path(__file__).resolve().parent / "fixtures"
THERMOSTAT = str(FIXTURES / "thermostat.py")
WRITE_MARK = CAT_INSTRUCTIONS.splitlines()[0]  # "Now write one new task ..."


class Scripted(ModelBackend):
    """Replies ``script(prompt_text)``, ending its turn; records every prompt it is given."""

    name = "scripted"

    def __init__(self, script, model: str = "scripted-model"):
        super().__init__(model)
        self.script = script
        self.prompts: list[str] = []
        self.params: list[SamplingParams] = []

    @property
    def tokenizer(self):
        return TOKENIZER

    def generate(self, prompts, params):
        self.params.append(params)
        out = []
        for prompt in prompts:
            text = TOKENIZER.decode(prompt)
            self.prompts.append(text)
            reply = self.script(text)
            ids = TOKENIZER(reply, add_special_tokens=False)["input_ids"]
            out.append(Generation(ids + [TOKENIZER.eos_token_id], reply, None, "stop"))
        return out


def after_prefix(text: str) -> str:
    """What a model writes after the ``<instruction>`` its reply is started with."""
    return text.split(WRITE_PREFIX, 1)[1] if WRITE_PREFIX in text else text


def written(text: str) -> str:
    """The task text a challenger gets when the model writes ``text``."""
    return WRITE_PREFIX + after_prefix(text)


def writer(*texts: str):
    """A script for a challenger: write prompts get ``texts`` in turn (the last repeats)."""
    queue = list(texts)

    def script(prompt: str) -> str:
        assert WRITE_MARK in prompt, prompt[-300:]
        assert prompt.endswith("<|im_start|>assistant\n" + WRITE_PREFIX)
        return after_prefix(queue.pop(0) if len(queue) > 1 else queue[0])

    return script


def code(source: str) -> str:
    return textwrap.dedent(source).strip() + "\n"


GOOD = """Here is a new task.

<instruction>What is 17
times 23?</instruction>
<verify>
```python
def verify(state, answer):
    return isinstance(answer, (int, float)) and abs(answer - 391) < 1e-9
```
</verify>
<solution>
def solve(tools):
    return tools.multiply(a=17, b=23)
</solution>
<failure>
def solve(tools):
    return tools.add(a=17, b=23)
</failure>
<failure>
def solve(tools):
    return 17 * 22
</failure>"""

LENIENT = """<instruction>What is 40 divided by 8?</instruction>
<verify>
def verify(state, answer):
    return answer is not None
</verify>
<solution>
def solve(tools):
    return tools.divide(a=40, b=8)
</solution>
<failure>
def solve(tools):
    return tools.multiply(a=40, b=8)
</failure>"""

GARBAGE = "Sure! A task: add two numbers. def solve(tools): return tools.add(a=1, b=2)"


@pytest.fixture
def pool():
    # one pool per filter run (see tests/test_evals.py)
    with SandboxPool(get_sandbox(), Limits(), size=2) as pool:
        yield pool


# -- the tagged format ---------------------------------------------------------------------------


def test_parse_cat_reads_every_part():
    cat = parse_cat(GOOD)
    assert cat["instruction"] == "What is 17 times 23?"  # whitespace collapsed
    assert cat["verify"] == code(
        """
        def verify(state, answer):
            return isinstance(answer, (int, float)) and abs(answer - 391) < 1e-9
        """
    )  # the code fence is gone
    assert cat["solution"] == "def solve(tools):\n    return tools.multiply(a=17, b=23)\n"
    assert cat["failures"] == [
        "def solve(tools):\n    return tools.add(a=17, b=23)\n",
        "def solve(tools):\n    return 17 * 22\n",
    ]
    compile(cat["verify"], "verify", "exec")


def test_parse_cat_strips_plain_fences_too():
    text = GOOD.replace("<solution>\n", "<solution>\n```\n").replace(
        "b=23)\n</solution>", "b=23)\n```\n</solution>"
    )
    assert parse_cat(text)["solution"] == parse_cat(GOOD)["solution"]


def test_parse_cat_names_the_missing_sections():
    with pytest.raises(ValueError, match=r"^no <verify>, <failure> section$"):
        parse_cat("<instruction>x</instruction><solution>def solve(tools): pass</solution>")
    with pytest.raises(ValueError) as error:
        parse_cat(GARBAGE)
    for tag in ("instruction", "verify", "solution", "failure"):
        assert f"<{tag}>" in str(error.value)
    with pytest.raises(ValueError, match="<failure>"):  # an unclosed section is missing
        parse_cat(GOOD.replace("</failure>", ""))


def test_parse_cat_keeps_at_most_three_failures():
    failures = "".join(
        f"<failure>\ndef solve(tools):\n    return {n}\n</failure>\n" for n in range(5)
    )
    cat = parse_cat(LENIENT.split("<failure>")[0] + failures)
    assert cat["failures"] == [f"def solve(tools):\n    return {n}\n" for n in range(3)]


def test_render_cat_round_trips_through_parse_cat():
    examples = load_toolset("calculator").create().examples + load_toolset("shop").create().examples
    assert len(examples) >= 3
    for task in examples:
        cat = parse_cat(render_cat(task))
        assert cat == {
            "instruction": " ".join(task.instruction.split()),
            "verify": task.verify.strip() + "\n",
            "solution": task.solution.strip() + "\n",
            "failures": [failure.strip() + "\n" for failure in task.failures[:3]],
        }
    task = CodeAsTask.from_dict({"toolset": "calculator", **parse_cat(GOOD)})
    assert parse_cat(render_cat(task)) == parse_cat(GOOD)


# -- the explore strategy ------------------------------------------------------------------------


def explore_script(*texts: str):
    """Exploration: read the kitchen, set its target, say done; then write ``texts``."""
    write = writer(*texts)
    calls = [
        '<tool_call>{"name": "get_room", "arguments": {"room": "kitchen"}}</tool_call>',
        '<tool_call>{"name": "set_target", "arguments": {"room": "kitchen", "celsius": 25}}'
        "</tool_call>",
        "<answer>done</answer>",
    ]

    def script(prompt: str) -> str:
        if WRITE_MARK in prompt:
            return write(prompt)
        assert EXPLORE_PROMPT in prompt
        return calls[prompt.count("<|im_start|>assistant\n") - 1]

    return script


def test_explore_runs_the_tools_then_writes_with_provenance():
    thermostat = load_toolset(THERMOSTAT)
    backend = Scripted(explore_script(GOOD.replace("multiply", "get_room"), GARBAGE))
    challenger = ExploreChallenger(backend, ChallengeConfig(explore_turns=4, max_new_tokens=99))
    steps: list[int] = []
    lines = challenger.candidates(thermostat, [3, 4], on_step=steps.append)
    assert steps[-1] == 2

    # the exploration ran on fresh toolsets, reset with each attempt's seed
    first = lines[0].task.provenance["exploration"]
    tool_results = [json.loads(m["content"]) for m in first if m["role"] == "tool"]
    assert tool_results == [
        {"current": 17, "target": 20.0, "mode": "off"},  # seed 3: the kitchen reads 17
        {"current": 17, "target": 25.0, "mode": "off"},
    ]
    assert first[-1] == {"role": "assistant", "content": "<answer>done</answer>"}

    # the write prompts: the exploration, then the tool signatures and a fresh state example
    writes = [prompt for prompt in backend.prompts if WRITE_MARK in prompt]
    assert len(writes) == 2
    fresh = thermostat.create()
    for prompt, seed in zip(writes, [3, 4], strict=True):
        assert signatures(fresh) in prompt
        assert "tools.set_target(room: string, celsius: number)" in prompt
        fresh.reset(seed)
        assert f"the state is: {json.dumps(fresh.state())}\n" in prompt  # reset after exploring
        assert '"celsius": 25' in prompt and '"target": 25.0' in prompt  # the exploration
        assert worked_task("stateful") in prompt  # the thermostat keeps state
    assert backend.params[-1].max_new_tokens == 99

    good, bad = lines
    assert isinstance(good, TaskLine) and good.error is None and good.line == 1
    task = good.task
    assert task.toolset == THERMOSTAT and task.seed == 3
    assert task.instruction == "What is 17 times 23?"
    assert set(task.provenance) == {"strategy", "model", "exploration", "raw"}
    assert task.provenance["strategy"] == "explore"
    assert task.provenance["model"] == "scripted-model"
    assert task.provenance["raw"] == written(GOOD.replace("multiply", "get_room"))
    json.dumps(task.to_dict())

    assert bad.task is None and bad.line == 2 and bad.raw == written(GARBAGE)
    assert (
        bad.error == "unparseable task: no <instruction>, <verify>, <solution>, <failure> section"
    )
    assert bad.id == "line-2"


MYTOOLS = str(Path(__file__).resolve().parents[1] / "examples" / "mytools.py")


def test_explore_shows_a_worked_task_for_a_toolset_like_the_one_it_writes_for():
    backend = Scripted(explore_script(GOOD))  # mytools has no get_room: exploring errs, fine
    ExploreChallenger(backend, ChallengeConfig(explore_turns=1)).attempt(load_toolset(MYTOOLS), [0])
    (prompt,) = [prompt for prompt in backend.prompts if WRITE_MARK in prompt]
    assert worked_task("stateless") in prompt
    assert worked_task("stateful") not in prompt
    # the example comes before the tools the task is for, and says it is about other tools
    assert prompt.index("for other tools") < prompt.index("tools.celsius_to_fahrenheit(")


def test_seeded_shows_its_examples_and_no_worked_task_about_other_tools():
    backend = Scripted(writer(GOOD))
    SeededChallenger(backend).attempt(load_toolset("calculator"), [0])
    assert all("for other tools" not in prompt for prompt in backend.prompts)


@pytest.mark.parametrize("kind, toolset", [("stateful", THERMOSTAT), ("stateless", MYTOOLS)])
def test_a_copy_of_the_worked_task_is_rejected_as_calling_unknown_tools(kind, toolset, pool):
    """The worked tasks are about tools a toolset is unlikely to have: a copy fails at once."""
    spec = load_toolset(toolset)
    copy = Attempt(0, WRITE_PREFIX + after_prefix(worked_task(kind)))
    (verdict,) = run_filter(task_lines([copy], toolset, "explore", "m"), pool, spec).verdicts
    assert (verdict.kept, verdict.stage) == (False, "parses")
    assert verdict.reason.startswith("solution calls unknown tool")


# -- the seeded strategy -------------------------------------------------------------------------


def test_seeded_shows_the_toolsets_own_examples():
    calculator = load_toolset("calculator")
    shipped = calculator.create().examples
    backend = Scripted(writer(GOOD))
    lines = SeededChallenger(backend, ChallengeConfig(shots=2)).candidates(calculator, [0, 1, 2])
    assert len(backend.prompts) == 3 and len(backend.params) == 1  # one batch
    for prompt in backend.prompts:
        shown = [task for task in shipped if render_cat(task) in prompt]
        assert len(shown) == 2
        assert signatures(calculator.create()) in prompt
        assert "Write a new task, different from the examples." in prompt
    assert [line.task.provenance["strategy"] for line in lines] == ["seeded"] * 3
    assert [line.task.seed for line in lines] == [0, 0, 0]  # the examples' environment
    assert all(line.task.provenance["exploration"] == [] for line in lines)


def test_seeded_writes_in_the_environment_of_the_examples_it_shows():
    shop = load_toolset("shop")
    shipped = shop.create().examples
    other = [
        dataclasses.replace(task, id=f"{task.id}-7", seed=7, instruction=f"{task.instruction}!")
        for task in shipped
    ]
    backend = Scripted(writer(GOOD))
    config = ChallengeConfig(examples=tuple(shipped + other), shots=2)
    seeds = list(range(8))
    lines = SeededChallenger(backend, config).candidates(shop, seeds)
    environments = [line.task.seed for line in lines]
    # every environment drawn (the shipped examples' and 7), each task in one
    assert set(environments) == {7, *(task.seed for task in shipped)}
    instance = shop.create()
    for prompt, environment in zip(backend.prompts, environments, strict=True):
        shown = [task for task in shipped + other if render_cat(task) in prompt]
        assert {task.seed for task in shown} == {environment}
        assert state_line(state_example(instance, environment)) in prompt
    log = [
        Attempt.from_dict(asdict(attempt))
        for attempt in SeededChallenger(Scripted(writer(GOOD)), config).attempt(shop, seeds)
    ]
    assert [attempt.environment for attempt in log] == environments  # resume keeps it


def test_seeded_uses_given_examples_instead():
    example = CodeAsTask.from_dict({"toolset": "calculator", "id": "mine", **parse_cat(LENIENT)})
    backend = Scripted(writer(GOOD))
    config = ChallengeConfig(examples=(example,))
    SeededChallenger(backend, config).candidates(load_toolset("calculator"), [5])
    [prompt] = backend.prompts
    assert render_cat(example) in prompt
    assert not any(
        task.instruction in prompt for task in load_toolset("calculator").create().examples
    )


def test_seeded_without_examples_says_what_to_do():
    plain = load_toolset(str(FIXTURES / "plain_tools.py"))
    assert plain.create().examples == []
    backend = Scripted(writer(GOOD))
    with pytest.raises(ScError, match="needs example tasks.*pass --examples"):
        SeededChallenger(backend).candidates(plain, [0])
    assert backend.prompts == []


# -- through the filter --------------------------------------------------------------------------


def test_written_tasks_go_through_the_filter(pool):
    calculator = load_toolset("calculator")
    backend = Scripted(writer(GOOD, LENIENT, GARBAGE))
    lines = SeededChallenger(backend).candidates(calculator, [0, 1, 2])
    report = run_filter(lines, pool, calculator)
    kept, lenient, garbage = report.verdicts
    assert kept.kept and kept.item.task.instruction == "What is 17 times 23?"
    assert (lenient.kept, lenient.stage) == (False, "failures_fail")
    assert lenient.reason == "failure case 1 passes verify"
    assert (garbage.kept, garbage.stage) == (False, "parses")
    assert garbage.reason.startswith("unparseable task: no <")
    assert report.stages() == {
        "parses": 2,
        "verify_runs": 2,
        "solution_passes": 2,
        "failures_fail": 1,
        "deterministic": 1,
        "verifier_strict": 1,
        "unique": 1,
    }


def test_sc_challenge_command(tmp_path, monkeypatch):
    backend = Scripted(writer(GOOD, LENIENT, GARBAGE))
    specs = []

    def load_model(spec=None, **options):
        specs.append(spec)
        return backend

    monkeypatch.setattr(api_module, "load_model", load_model)
    out = tmp_path / "tasks.jsonl"
    args = ["challenge", "--tools", "calculator", "-n", "3", "--strategy", "seeded"]
    args += ["--out", str(out), "--json", "--workers", "2", "--challenger-model", "writer-x"]
    result = CliRunner().invoke(cli_module.cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["attempts"] == 3 and data["kept"] == 1
    assert data["stages"]["parses"] == 2 and data["stages"]["unique"] == 1
    assert specs == ["writer-x"]
    kept = [json.loads(line) for line in out.read_text().splitlines()]
    rejected_path = tmp_path / "tasks.rejected.jsonl"
    rejected = [json.loads(line) for line in rejected_path.read_text().splitlines()]
    assert len(kept) + len(rejected) == 3
    assert kept[0]["instruction"] == "What is 17 times 23?"
    assert kept[0]["provenance"]["strategy"] == "seeded"
    assert [row["rejection"]["stage"] for row in rejected] == ["failures_fail", "parses"]
    assert rejected[1]["raw"] == written(GARBAGE)
    assert (rejected[1]["seed"], rejected[1]["toolset"]) == (0, "calculator")  # examples' seed
    assert rejected[1]["provenance"]["strategy"] == "seeded"  # an unparseable one says whose


# -- saved attempts: a killed challenge resumes -------------------------------------------------


class EngineDied(Exception):
    pass


def dies_after(count: int, script):
    """``script``, until the ``count``-th prompt: then the engine dies, as vLLM's can."""
    calls = iter(range(count, -1, -1))

    def dying(prompt: str) -> str:
        if next(calls) == 0:
            raise EngineDied
        return script(prompt)

    return dying


def test_a_killed_challenge_keeps_whole_chunks_and_resumes(tmp_path, pool):
    calculator = load_toolset("calculator")
    saved = tmp_path / "attempts.jsonl"
    config = ChallengeConfig(chunk=2)
    dying = Scripted(dies_after(3, writer(GOOD, LENIENT, GARBAGE)))
    with pytest.raises(EngineDied):
        api_module.challenge(
            calculator, 5, dying, strategy="seeded", config=config, pool=pool, attempts_file=saved
        )
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [row["seed"] for row in rows] == [0, 1]  # the first chunk; the second died
    assert {row["strategy"] for row in rows} == {"seeded"}
    assert {row["model"] for row in rows} == {"scripted-model"}

    again = Scripted(writer(GARBAGE))
    progress = []
    result = api_module.challenge(
        calculator, 5, again, strategy="seeded", config=config, pool=pool,
        attempts_file=saved, on_attempts=progress.append,
    )  # fmt: skip
    assert len(again.prompts) == 3  # seeds 2, 3 and 4 only
    assert progress[0] == 2 and progress[-1] == 5
    assert result.attempts == 5 and len(result.report.verdicts) == 5
    assert [t.instruction for t in result.kept] == ["What is 17 times 23?"]
    assert result.report.stages()["parses"] == 2  # GOOD and LENIENT, saved before the death
    assert [json.loads(line)["seed"] for line in saved.read_text().splitlines()] == [0, 1, 2, 3, 4]


def test_saved_attempts_of_another_challenge_are_an_error(tmp_path, pool):
    calculator = load_toolset("calculator")
    saved = tmp_path / "attempts.jsonl"
    config = ChallengeConfig(chunk=1)
    api_module.challenge(
        calculator, 1, Scripted(writer(GOOD)), strategy="seeded", config=config, pool=pool,
        attempts_file=saved,
    )  # fmt: skip
    with pytest.raises(ScError, match="attempts of 'seeded' on 'calculator', not of this"):
        api_module.challenge(
            calculator, 2, Scripted(writer(GOOD)), strategy="explore", attempts_file=saved
        )
    other = Scripted(writer(GOOD), model="another-model")
    with pytest.raises(ScError, match="attempts by scripted-model, not another-model"):
        api_module.challenge(calculator, 2, other, strategy="seeded", attempts_file=saved)
    saved.write_text('{"seed": 0}\n')
    with pytest.raises(ScError, match=r"attempts.jsonl:1: not a saved attempt"):
        api_module.challenge(calculator, 2, other, strategy="seeded", attempts_file=saved)


def test_sc_challenge_resume(tmp_path, monkeypatch):
    backend = Scripted(dies_after(2, writer(GOOD, LENIENT, GARBAGE)))
    monkeypatch.setattr(api_module, "load_model", lambda spec=None, **options: backend)
    out = tmp_path / "tasks.jsonl"
    saved = tmp_path / "tasks.attempts.jsonl"
    args = ["challenge", "--tools", "calculator", "-n", "3", "--strategy", "seeded"]
    args += ["--out", str(out), "--json", "--workers", "2", "--chunk", "1"]
    died = CliRunner().invoke(cli_module.cli, args)
    assert isinstance(died.exception, EngineDied)
    assert len(saved.read_text().splitlines()) == 2 and not out.exists()

    backend.script = writer(GARBAGE)
    refused = CliRunner().invoke(cli_module.cli, args)
    assert isinstance(refused.exception, ScError)  # `sc` prints it as one line
    assert "did not finish: pass --resume" in str(refused.exception)
    assert len(saved.read_text().splitlines()) == 2  # nothing lost

    resumed = CliRunner().invoke(cli_module.cli, [*args, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    data = json.loads(resumed.stdout)
    assert data["attempts"] == 3 and data["kept"] == 1 and data["stages"]["parses"] == 2
    assert not saved.exists()  # the kept and rejected files hold every attempt now
    assert len(out.read_text().splitlines()) == 1
    assert len((tmp_path / "tasks.rejected.jsonl").read_text().splitlines()) == 2


def test_sc_challenge_rejects_an_unknown_strategy(run_sc, tmp_path):
    result = run_sc("challenge", "--tools", "calculator", "--strategy", "nope", cwd=tmp_path)
    assert result.returncode == 1
    assert "unknown strategy 'nope'" in result.stderr and "explore" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.skipif(
    not (MODEL_DIR / "config.json").is_file(), reason="the converted SmolLM2 model is missing"
)
def test_sc_challenge_with_the_embedded_model(run_sc, tmp_path):
    # the slowest test here (about a minute on two busy cores: 640-token tasks); one thread,
    # because two OpenMP threads that wait on each other crawl on a shared CPU
    out = tmp_path / "tasks.jsonl"
    result = run_sc(
        "challenge", "--tools", "calculator", "-n", "2", "--strategy", "seeded", "--json",
        "--out", str(out), "--workers", "1", "--model", "smollm2",
        env={"SC_CACHE": str(MODEL_DIR.parent.parent), "OMP_NUM_THREADS": "1"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert set(data) == {"attempts", "kept", "stages", "diversity"}
    assert data["attempts"] == 2 and 0 <= data["kept"] <= 2
    assert data["diversity"]["tasks"] == data["kept"]  # the kept tasks' diversity
    assert list(data["stages"]) == [
        "parses",
        "verify_runs",
        "solution_passes",
        "failures_fail",
        "deterministic",
        "verifier_strict",
        "unique",
    ]
    assert data["stages"]["unique"] == data["kept"]
    rejected_path = tmp_path / "tasks.rejected.jsonl"
    assert out.is_file() and rejected_path.is_file()
    kept = out.read_text().splitlines()
    rejected = [json.loads(line) for line in rejected_path.read_text().splitlines()]
    assert len(kept) == data["kept"] and len(kept) + len(rejected) == 2
    for row in rejected:
        assert row["rejection"]["stage"] in data["stages"] and row["rejection"]["reason"]
        assert (row.get("raw") or row["provenance"]["raw"]).startswith(WRITE_PREFIX)


def test_constrained_format_accepts_every_shipped_example_and_parses_back():
    """The grammar handed to constrained decoding and the parser agree: what the regex allows
    after the prefilled ``<instruction>`` parses, and well-formed tasks are allowed."""
    import re

    from sc_core.challenge import CAT_REGEX, WRITE_PREFIX

    examples = load_toolset("calculator").create().examples + load_toolset("shop").create().examples
    for example in examples:
        text = render_cat(example)
        assert re.fullmatch(CAT_REGEX, text.removeprefix(WRITE_PREFIX)), example.id
        assert parse_cat(text)["instruction"] == example.instruction
    assert not re.fullmatch(CAT_REGEX, "no tags at all")


# -- declined seeds, and strategies without a model --------------------------------------------


class Fixed(Challenger):
    """Writes GOOD for even seeds and declines odd ones, without a model."""

    name = "fixed"
    needs_model = False
    given: list = []
    """The model each instance was built with."""

    def __init__(self, model, config=None):
        super().__init__(model, config)
        Fixed.given.append(model)

    def attempt(self, toolset, seeds, on_step=None):
        return [
            Attempt(seed, written(GOOD))
            if seed % 2 == 0
            else Attempt(seed, declined=f"odd seed {seed}")
            for seed in seeds
        ]


@pytest.fixture
def fixed(monkeypatch):
    """The ``fixed`` strategy registered, and any model load a test failure."""

    def no_model(spec=None, **options):
        raise AssertionError(f"a model was loaded: {spec}")

    Fixed.given = []
    monkeypatch.setitem(registry("register_challengers"), "fixed", Fixed)
    monkeypatch.setattr(api_module, "load_model", no_model)
    monkeypatch.setattr(Run, "serve", lambda self, spec: no_model(spec))
    return Fixed


def test_a_declined_seed_is_rejected_with_the_challengers_reason(pool):
    calculator = load_toolset("calculator")
    attempts = [Attempt(0, written(GOOD)), Attempt(1, declined="no template for seed 1")]
    report = run_filter(task_lines(attempts, "calculator", "fixed", None), pool, calculator)
    kept, declined = report.verdicts
    assert kept.kept and kept.item.task.provenance["model"] is None
    assert (declined.kept, declined.stage) == (False, "parses")
    assert declined.reason == "declined: no template for seed 1"
    assert report.stages()["parses"] == 1  # counted like a task that does not parse
    row = api_module.rejected_row(declined)
    assert (row["seed"], row["toolset"], row["raw"]) == (1, "calculator", "")
    assert row["provenance"] == {"strategy": "fixed", "model": None, "exploration": []}


@pytest.mark.parametrize(
    ("text", "declined", "message"),
    [
        ("", "", "declined must be a reason"),
        ("", "   ", "declined must be a reason"),
        ("", 3, "declined must be a reason"),
        (GOOD, "no template", "a declined attempt has no text"),
    ],
)
def test_a_declined_attempt_is_a_reason_and_no_text(text, declined, message):
    with pytest.raises(ValueError, match=message):
        Attempt(0, text, declined=declined)


def test_a_strategy_without_a_model_loads_none_and_resumes(tmp_path, pool, fixed, monkeypatch):
    calculator = load_toolset("calculator")
    saved = tmp_path / "attempts.jsonl"
    config = ChallengeConfig(chunk=1)
    result = api_module.challenge(
        calculator, 2, "never-loaded", strategy="fixed", config=config, pool=pool,
        attempts_file=saved,
    )  # fmt: skip
    assert fixed.given == [None]
    assert [task.provenance["model"] for task in result.kept] == [None]
    assert [row["rejection"]["reason"] for row in result.rejected] == ["declined: odd seed 1"]
    rows = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [(row["model"], row["declined"]) for row in rows] == [(None, None), (None, "odd seed 1")]

    monkeypatch.setattr(fixed, "attempt", lambda *args, **kwargs: pytest.fail("made again"))
    again = api_module.challenge(
        calculator, 2, strategy="fixed", config=config, pool=pool, attempts_file=saved
    )
    assert [row["rejection"] for row in again.rejected] == [
        {"stage": "parses", "reason": "declined: odd seed 1"}
    ]
    assert again.report.stages() == result.report.stages()


def test_sc_challenge_with_a_strategy_without_a_model(tmp_path, fixed):
    out = tmp_path / "tasks.jsonl"
    args = ["challenge", "--tools", "calculator", "-n", "2", "--strategy", "fixed"]
    args += ["--out", str(out), "--json", "--workers", "2", "--model", "never-loaded"]
    result = CliRunner().invoke(cli_module.cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stages"]["parses"] == 1
    rejected = (tmp_path / "tasks.rejected.jsonl").read_text().splitlines()
    assert [json.loads(row)["rejection"]["reason"] for row in rejected] == ["declined: odd seed 1"]


def test_the_run_challenge_phase_loads_no_model_for_such_a_strategy(tmp_path, pool, fixed):
    config = RunConfig(
        tools="calculator", model="smollm2", strategy="fixed", tasks_per_iteration=1, seed=1
    )  # one odd seed: declined
    run = Run.create(config, tmp_path)
    folder = run.dir.iteration(1)
    folder.mkdir(parents=True)
    run.challenge(1, folder, pool)
    assert fixed.given == [None]
    assert json.loads((folder / "filter.json").read_text())["stages"]["parses"] == 0
    [rejected] = [json.loads(line) for line in (folder / "rejected.jsonl").read_text().splitlines()]
    assert rejected["rejection"]["reason"] == "declined: odd seed 100001"
    assert rejected["provenance"]["model"] is None


def test_a_strategy_that_skips_a_seed_is_a_one_line_error(pool, monkeypatch, fixed):
    monkeypatch.setattr(fixed, "attempt", lambda self, toolset, seeds, on_step=None: [])
    with pytest.raises(ScError, match="'fixed' broke its contract: attempt\\(\\) must return one"):
        api_module.challenge("calculator", 2, strategy="fixed", pool=pool)


def test_a_long_state_shows_some_of_every_collection():
    """The writing prompt's state keeps a few entries of each collection, whole, so a task can
    name things that exist: the shop's customers, products and orders all show."""
    shop = load_toolset("shop").create()
    shown = state_example(shop, 5, limit=1500)
    assert len(shown) <= 1500
    preview = json.loads(shown)
    fresh = shop.state()
    assert set(preview) == set(fresh)  # every collection
    for name in ("customers", "products", "orders"):
        entries = {key: value for key, value in preview[name].items() if key != "..."}
        assert entries and set(entries) <= set(fresh[name])
        assert preview[name]["..."] == f"{len(fresh[name]) - len(entries)} more"
    for name in ("customers", "products"):  # records stay whole
        assert all(
            fresh[name][key] == value for key, value in preview[name].items() if key != "..."
        )
    assert state_line("{}") == "This toolset keeps no state: `state` is {}."
    assert "Name only things" in state_line(shown)


def test_a_copy_of_a_shown_example_is_not_a_new_task(pool):
    """The seeded strategy's model copied the examples it was shown (the 0.5B wrote the
    shipped "Three runners finished in 12.5, 13.1 and 11.9 minutes..." word for word): such a
    candidate is rejected at ``unique``, naming the example."""
    calculator = load_toolset("calculator")
    [example] = [t for t in calculator.create().examples if t.id == "seed-calc-mean"]
    copied = render_cat(example).replace("Three runners", "three runners")
    backend = Scripted(writer(copied, GOOD))
    config = ChallengeConfig(shots=1)
    result = api_module.challenge(
        calculator, 2, backend, strategy="seeded", config=config, pool=pool
    )
    copy, new = result.report.verdicts
    assert (copy.kept, copy.stage) == (False, "unique")
    assert copy.reason == "copies the example seed-calc-mean (same instruction)"
    assert new.kept
    assert SeededChallenger.shown(calculator, config) == calculator.create().examples
    assert ExploreChallenger.shown(calculator, config) == []


def test_the_default_strategy_shows_examples_where_there_are_some(tmp_path):
    """seeded needs example tasks: a toolset without them (a user's module of functions) is
    explored instead, so that `sc run --tools mytools` works with no --strategy."""
    mine = str(Path(__file__).resolve().parents[1] / "examples" / "mytools.py")
    assert api_module.default_strategy("calculator") == "seeded"  # ships seed tasks
    assert api_module.default_strategy(mine) == "explore"
    example = api_module.toolset("calculator").create().examples[0]
    assert api_module.default_strategy(mine, (example,)) == "seeded"  # --examples FILE
    run = Run.create(RunConfig(tools=mine, model="smollm2", name="r"), tmp_path)
    assert run.config.strategy == "explore"
    assert 'strategy = "explore"' in (tmp_path / "r" / "config.toml").read_text()  # resumes


@pytest.mark.parametrize(
    ("args", "writer"),
    [
        ([], "big"),  # the default model's pair
        (["--model", "small"], "big"),
        (["--model", "transformers:small"], "transformers:big"),
        (["--model", "small", "--challenger-model", ""], "small"),  # '': the model itself
        (["--challenger-model", ""], "small"),  # the default model itself
        (["--model", "smollm2"], "smollm2"),  # no pair
        (["--model", "small", "--challenger-model", "other"], "other"),
    ],
)
def test_sc_challenge_writes_with_the_models_paired_challenger(args, writer, monkeypatch, tmp_path):
    from sc_core import model_sources
    from sc_core.default_plugins.smollm2 import SMOLLM2
    from sc_core.model_sources import ModelSource

    small = ModelSource("small", "s", hub_id="org/small", challenger="big", default_rank=99)
    sources = {"smollm2": SMOLLM2, "small": small, "big": ModelSource("big", "b", hub_id="o/b")}
    monkeypatch.setattr(model_sources, "model_sources", lambda: sources)
    loaded = []

    def record(spec=None, **options):
        loaded.append(spec)
        raise ScError("not loaded in this test")

    monkeypatch.setattr(api_module, "load_model", record)
    out = str(tmp_path / "tasks.jsonl")
    command = ["challenge", "--tools", "calculator", "-n", "1", "--out", out, *args]
    result = CliRunner().invoke(cli_module.cli, command)
    assert str(result.exception) == "not loaded in this test"
    assert loaded == [writer]
