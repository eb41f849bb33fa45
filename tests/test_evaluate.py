"""Evaluation (sc_core.evaluate): pass@k, and scoring scripted episodes with the tasks' own
verifiers in the sandbox; ``sc eval`` once with the real embedded model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import sc_core.evaluate as evaluate_module
from sc_core.agent import Agent, AgentConfig
from sc_core.evaluate import EvalReport, episode_specs, evaluate, pass_at_k
from sc_core.models import Generation, ModelBackend
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import CodeAsTask, read_tasks
from sc_core.tools import Tool, Toolset, ToolsetSpec

ROOT = Path(__file__).resolve().parent.parent
EVALS = ROOT / "evals"
MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
HAVE_MODEL = (MODEL_DIR / "tokenizer.json").is_file()
needs_model = pytest.mark.skipif(
    not HAVE_MODEL,
    reason=f"the converted SmolLM2 model is missing at {MODEL_DIR} (load smollm2 once to make it)",
)


def eval_tasks(name: str, *ids: str) -> list[CodeAsTask]:
    tasks = {item.task.id: item.task for item in read_tasks(EVALS / f"{name}.jsonl")}
    return [tasks[task_id] for task_id in ids]


# -- pass@k --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 1, 0.25),
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (5, 2, 3, 0.9),  # 1 - C(3,3)/C(5,3) = 1 - 1/10
        (10, 3, 1, 0.3),
        (4, 0, 1, 0.0),
        (4, 0, 4, 0.0),
        (4, 4, 1, 1.0),
        (4, 4, 4, 1.0),
        (4, 3, 2, 1.0),  # n - c < k: every draw of 2 holds a pass
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
    ],
)
def test_pass_at_k(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_grows_with_k():
    values = [pass_at_k(10, 2, k) for k in range(1, 11)]
    assert values == sorted(values) and values[0] == pytest.approx(0.2) and values[-1] == 1.0


def test_episode_specs_load_each_toolset_once_and_create_one_per_episode(monkeypatch):
    loads = []
    real = evaluate_module.load_toolset

    def counting(spec):
        loads.append(spec)
        return real(spec)

    monkeypatch.setattr(evaluate_module, "load_toolset", counting)
    tasks = eval_tasks("shop", "shop-001", "shop-006") + eval_tasks("calculator", "calc-001")
    pairs = episode_specs(tasks, k=3)
    assert loads == ["shop", "calculator"]
    assert [task.id for task, _ in pairs] == ["shop-001"] * 3 + ["shop-006"] * 3 + ["calc-001"] * 3
    assert len({id(spec.toolset) for _, spec in pairs}) == 9  # a fresh instance per episode
    assert [spec.seed for _, spec in pairs] == [task.seed for task, _ in pairs]
    assert all(spec.task_id == task.id for task, spec in pairs)


# -- a scripted executor -------------------------------------------------------------------------


if HAVE_MODEL:
    from transformers import AutoTokenizer

    TOKENIZER = AutoTokenizer.from_pretrained(MODEL_DIR)


class Scripted(ModelBackend):
    """Replies from per-instruction scripts: the n-th episode of an instruction gets the n-th
    list of turns; its i-th assistant turn the i-th reply (the last one repeats)."""

    name = "scripted"

    def __init__(self, scripts: dict[str, list[list[str]]]):
        super().__init__("scripted-model")
        self.scripts = scripts
        self.batches: list[int] = []

    @property
    def tokenizer(self):
        return TOKENIZER

    def generate(self, prompts, params):
        self.batches.append(len(prompts))
        seen: dict[str, int] = {}
        out = []
        for prompt in prompts:
            text = TOKENIZER.decode(prompt)
            instruction = next(i for i in self.scripts if f"user\n{i}<|im_end|>" in text)
            episode = seen[instruction] = seen.get(instruction, -1) + 1
            turns = self.scripts[instruction][episode]
            reply = turns[min(text.count("<|im_start|>assistant\n") - 1, len(turns) - 1)]
            ids = TOKENIZER(reply, add_special_tokens=False)["input_ids"]
            out.append(Generation(ids + [TOKENIZER.eos_token_id], reply, None, "stop"))
        return out


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


@pytest.fixture
def pool():
    # one pool per scoring run (bwrap workers belong to the thread that started them)
    with SandboxPool(get_sandbox(), Limits(), size=2) as pool:
        yield pool


def run_eval(tasks, scripts, pool, k, tools=None, **config) -> tuple[EvalReport, Scripted]:
    backend = Scripted(scripts)
    settings = {"temperature": 0.0, "answer_reminder": False} | config  # results as JSON
    agent = Agent(backend, AgentConfig(**settings))
    return evaluate(tasks, agent, pool, k, tools), backend


@needs_model
def test_evaluate_scores_right_and_wrong_answers(pool):
    add, split = eval_tasks("calculator", "calc-001", "calc-002")
    scripts = {
        add.instruction: [[call("add", a=348, b=1276), "<answer>1624</answer>"]] * 2,
        split.instruction: [["<answer>20</answer>"]] * 2,
    }
    report, backend = run_eval([add, split], scripts, pool, k=2)
    assert backend.batches == [4, 2]  # the wrong answers end after one turn
    result = report.to_dict()
    assert result["k"] == 2
    assert result["pass_at_1"] == 0.5 and result["pass_at_k"] == 0.5
    rows = {row["id"]: row for row in result["tasks"]}
    assert rows["calc-001"] == {
        "id": "calc-001",
        "n": 2,
        "passed": 2,
        "pass_at_1": 1.0,
        "pass_at_k": 1.0,
        "scores": [1.0, 1.0],
        "finish": ["answer", "answer"],
    }
    assert rows["calc-002"]["passed"] == 0 and rows["calc-002"]["scores"] == [0.0, 0.0]
    assert [item.task_id for item in report.scored] == ["calc-001"] * 2 + ["calc-002"] * 2
    assert all(item.error is None for item in report.scored)
    for item in report.scored:  # trajectories are JSON
        data = json.loads(json.dumps(item.to_dict()))
        assert set(data) == {"task_id", "score", "verify_error", "episode"}
        assert data["episode"]["task_id"] == item.task_id
    json.dumps(result)


@needs_model
def test_pass_at_k_over_mixed_episodes(pool):
    add, split = eval_tasks("calculator", "calc-001", "calc-002")
    scripts = {
        add.instruction: [["<answer>1624</answer>"], ["<answer>1,624</answer>"]],
        split.instruction: [["<answer>21.15</answer>"], ["<answer>84.6</answer>"]],
    }
    result = run_eval([add, split], scripts, pool, k=2)[0].to_dict()
    rows = {row["id"]: row for row in result["tasks"]}
    assert rows["calc-001"]["scores"] == [1.0, 1.0]  # the verifier reads "1,624" too
    assert rows["calc-002"]["scores"] == [1.0, 0.0]
    assert rows["calc-002"]["pass_at_1"] == 0.5 and rows["calc-002"]["pass_at_k"] == 1.0
    assert result["pass_at_1"] == 0.75 and result["pass_at_k"] == 1.0


@needs_model
def test_the_verifier_sees_the_episodes_final_state(pool):
    [task] = eval_tasks("shop", "shop-006")  # cancel O1013: verify checks the state only
    scripts = {
        task.instruction: [
            [call("cancel_order", order_id="O1013"), "<answer>cancelled</answer>"],
            ["<answer>cancelled</answer>"],  # says so without doing it
        ]
    }
    report, _ = run_eval([task], scripts, pool, k=2)
    solved, claimed = report.scored
    assert solved.episode.state["orders"]["O1013"]["status"] == "cancelled"
    assert json.loads(solved.episode.messages[3]["content"])["status"] == "cancelled"
    assert claimed.episode.state["orders"]["O1013"]["status"] == "pending"
    assert (solved.score, claimed.score) == (1.0, 0.0)
    assert solved.episode.seed == task.seed == 5
    assert report.to_dict()["tasks"][0]["pass_at_1"] == 0.5


@needs_model
def test_an_episode_that_never_answers_is_still_scored(pool):
    [add] = eval_tasks("calculator", "calc-001")
    expects_none = CodeAsTask.from_dict(
        {
            "id": "expects-none",
            "toolset": "calculator",
            "instruction": "Never answer.",
            "verify": "def verify(state, answer):\n    return state == {} and answer is None\n",
            "solution": "def solve(tools):\n    return None\n",
            "failures": ["def solve(tools):\n    return 1\n"],
        }
    )
    scripts = {
        add.instruction: [[call("add", a=1, b=1)]],
        expects_none.instruction: [['<tool_call>{"name": "add", "arguments": </tool_call>']],
    }
    report, _ = run_eval([add, expects_none], scripts, pool, k=1, max_turns=2)
    busy, garbled = report.scored
    assert busy.episode.finish == garbled.episode.finish == "max_turns"
    assert busy.episode.answer is None and busy.episode.state == {}
    assert (busy.score, busy.error) == (0.0, None)  # verify ran, and said no
    assert (garbled.score, garbled.error) == (1.0, None)  # verify ran, on answer None
    assert len(garbled.episode.invalid_turns) == 2
    assert report.to_dict()["pass_at_1"] == 0.5


def _fail_reset(seed: int) -> None:
    raise OSError("no database")


def _noop(x: int) -> int:
    """Do nothing.

    Args:
        x: A number.
    """
    return x


@needs_model
def test_an_episode_that_could_not_start_scores_zero_with_its_reason(pool):
    task = CodeAsTask.from_dict(
        {
            "id": "broken",
            "toolset": "broken",
            "instruction": "Anything.",
            "verify": "def verify(state, answer):\n    return True\n",
            "solution": "def solve(tools):\n    return None\n",
            "failures": ["def solve(tools):\n    return 1\n"],
        }
    )
    closed = []

    def factory() -> Toolset:
        return Toolset(
            [Tool.from_function(_noop)], reset=_fail_reset, close=lambda: closed.append(1)
        )

    report, backend = run_eval([task], {}, pool, k=2, tools=ToolsetSpec("broken", factory))
    assert backend.batches == []
    assert [item.score for item in report.scored] == [0.0, 0.0]
    assert all("no database" in item.error for item in report.scored)
    assert [item.episode.finish for item in report.scored] == ["error", "error"]
    assert closed == [1, 1]  # every episode's toolset is closed
    assert report.to_dict()["pass_at_k"] == 0.0


# -- the command, with the real model ------------------------------------------------------------


def short_task(number: int, question: str, answer: int) -> dict:
    """A calculator task the model answers in a few tokens (the calculator set's word problems
    make it write 200-token explanations, minutes on a busy CPU)."""
    return {
        "id": f"short-{number}",
        "toolset": "calculator",
        "instruction": f"{question} Reply with only the number.",
        "verify": f"def verify(state, answer):\n    return str(answer).strip() == '{answer}'\n",
        "solution": f"def solve(tools):\n    return {answer}\n",
        "failures": ["def solve(tools):\n    return -1\n"],
    }


@needs_model
def test_sc_eval_command_with_the_embedded_model(run_sc, write_tasks, tmp_path):
    tasks = write_tasks([short_task(1, "What is 2 + 3?", 5), short_task(2, "What is 10 - 4?", 6)])
    out = tmp_path / "out"
    # OMP_NUM_THREADS=1: see the backend fixture in test_models.py (a shared CPU)
    result = run_sc(
        "eval", "--tasks", str(tasks), "-k", "1", "--max-turns", "1", "--temperature", "0",
        "--json", "--out", str(out), "--workers", "1", "--model", "smollm2",
        env={"SC_CACHE": str(MODEL_DIR.parent.parent), "OMP_NUM_THREADS": "1"}, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads(result.stdout)
    assert set(data) == {"pass_at_1", "pass_at_k", "k", "tasks"}
    assert data["k"] == 1 and 0 <= data["pass_at_1"] <= 1 and 0 <= data["pass_at_k"] <= 1
    assert [row["id"] for row in data["tasks"]] == ["short-1", "short-2"]
    assert all(row["n"] == 1 and row["finish"][0] for row in data["tasks"])
    rows = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row["episode"]["turns"] == 1 and row["episode"]["prompt_ids"]
        assert row["score"] in (0.0, 1.0) and row["verify_error"] is None
    assert json.loads((out / "results.json").read_text()) == data


def test_a_toolset_that_cannot_be_created_fails_its_episodes_only(pool):
    def broken():
        raise RuntimeError("the database is down")

    tasks = eval_tasks("calculator", "calc-001")
    report, _ = run_eval(tasks, {}, pool, 2, tools=ToolsetSpec("broken", broken))
    assert [item.score for item in report.scored] == [0.0, 0.0]
    episode = report.scored[0].episode
    assert episode.finish == "error"
    assert episode.error == "could not start: RuntimeError: the database is down"
