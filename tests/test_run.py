"""The self-challenge loop's mechanics (sc_core.run): phases, the run directory, held-out
evaluation, checkpoint hand-over and resume. A scripted model writes valid tasks and a copying
trainer stands in for RL, so these tests are fast; the real loop with the embedded model and a
real trainer is tested in plugins/sc-trl/tests/test_sc_run.py."""

from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sc_core import plugins
from sc_core.cli import cli
from sc_core.errors import ScError
from sc_core.models import Generation, ModelBackend, resolve_model
from sc_core.run import Events, Run, RunConfig, curriculum_guidance
from sc_core.train import RLBackend, rollouts

MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
pytestmark = pytest.mark.skipif(
    not (MODEL_DIR / "tokenizer.json").is_file(), reason=f"no converted model at {MODEL_DIR}"
)

TASK = """{n} apples cost 7 each. What do they cost?</instruction>
<verify>
def verify(state, answer):
    return answer == {total}
</verify>
<solution>
def solve(tools):
    return tools.multiply(a={n}, b=7)
</solution>
<failure>
def solve(tools):
    return {n} + 7
</failure>"""


NUMBERS = itertools.count(2)  # every written task differs, so none is a duplicate


class Scripted(ModelBackend):
    """Writes a valid, different task for every challenger prompt; answers 42 as executor."""

    name = "scripted"
    calls: list[str] = []
    writes_left: int | None = None
    """Tasks written before the engine dies (None: it never does)."""

    def __init__(self, model: str, **options):
        super().__init__(model, **options)
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)

    @property
    def tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, params):
        out = []
        for prompt in prompts:
            text = self._tokenizer.decode(prompt)
            if text.endswith("<instruction>"):
                if Scripted.writes_left is not None:
                    if Scripted.writes_left == 0:
                        raise RuntimeError("engine died")
                    Scripted.writes_left -= 1
                n = next(NUMBERS)
                reply = TASK.format(n=n, total=n * 7)
                Scripted.calls.append(f"write {self.model_id}")
            else:
                reply = "<answer>42</answer>"
                Scripted.calls.append(f"solve {self.model_id}")
            ids = self._tokenizer(reply, add_special_tokens=False)["input_ids"]
            out.append(Generation(ids + [self._tokenizer.eos_token_id], reply, None, "stop"))
        return out


@dataclass
class CopySettings:
    fail: bool = False
    """Raise instead of saving (a trainer killed mid-way)."""
    unchanged: bool = False
    """Report that no step trained (rft when no rollout succeeds)."""


class Copy(RLBackend):
    """Scores one rollout per task, then saves the starting weights unchanged."""

    name = "copy"
    Config = CopySettings
    rollout_models: list = []
    trained_ids: list = []

    def train(self, job):
        from sc_core.agent import Agent

        Copy.rollout_models.append(job.rollout_model)
        Copy.trained_ids = [task.id for task in job.tasks]
        samples = rollouts(
            job.tasks, Agent(Scripted(job.model), job.agent), job.pool, 1, job.shaper, job.tools
        )
        job.on_samples(samples)
        reward = sum(s.reward for s in samples) / len(samples)
        job.on_metrics({"step": 1, "reward": reward, "trained": not self.config.unchanged})
        job.out_dir.mkdir(parents=True)
        (job.out_dir / "partial-marker").write_text("")
        if self.config.fail:
            raise RuntimeError("killed")
        shutil.copytree(resolve_model(job.model), job.out_dir, dirs_exist_ok=True)
        return job.out_dir


@pytest.fixture(autouse=True)
def fakes(monkeypatch):
    monkeypatch.setitem(plugins.registry("register_models"), "scripted", Scripted)
    monkeypatch.setitem(plugins.registry("register_rl_backends"), "copy", Copy)
    Scripted.calls = []
    Scripted.writes_left = None


def config(**overrides) -> RunConfig:
    settings = dict(
        tools="calculator",
        model="scripted:smollm2",
        name="t",
        tasks_per_iteration=4,
        strategy="seeded",
        backend="copy",
        eval_k=2,
        max_turns=2,
        max_new_tokens=32,
        workers=1,
    )
    return RunConfig(**(settings | overrides))


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_config_round_trips_through_toml():
    original = config(options={"learning_rate": "1e-5", "lora": "true"}, holdout=0.5)
    assert RunConfig.from_toml(original.to_toml()) == original


def test_one_iteration_leaves_the_run_directory_of_the_architecture(tmp_path):
    phases = []
    run = Run.create(config(), tmp_path, events=Events(phase=lambda n, p: phases.append(p)))
    summary = run.go()
    root = tmp_path / "t"
    assert phases == ["challenge", "eval-before", "train", "eval-after"]
    for name in ("config.toml", "tasks.jsonl", "rejected.jsonl", "metrics.jsonl"):
        assert (root / name).is_file(), name
    kept = rows(root / "tasks.jsonl")
    assert len(kept) == 4 and all(row["iteration"] == 1 for row in kept)
    assert all(row["provenance"]["strategy"] == "seeded" for row in kept)
    heldout = rows(root / "iterations/001/heldout.jsonl")
    assert len(heldout) == 1  # a quarter of 4, evaluated, never trained on
    checkpoint = root / "checkpoints/iter-001"
    assert (checkpoint / "config.json").is_file()
    assert not checkpoint.with_name("iter-001.partial").exists()
    train = json.loads((root / "iterations/001/train.json").read_text())
    assert train["tasks"] == 3 and train["checkpoint"] == str(checkpoint.resolve())
    assert len(rows(root / "trajectories/iter-001-train.jsonl")) == 3
    assert len(rows(root / "trajectories/iter-001-before.jsonl")) == 2  # 1 task x k=2
    kinds = [row["kind"] for row in rows(root / "metrics.jsonl")]
    assert kinds == ["filter", "eval", "eval", "train", "train_summary"]
    assert summary == {
        "run_dir": str(root),
        "iterations": [
            {"iteration": 1, "kept": 4, "pass_at_1_before": 0.0, "pass_at_1_after": 0.0}
        ],
    }
    # the trained checkpoint was evaluated, with the backend the model spec names
    assert f"solve {checkpoint.resolve()}" in Scripted.calls


def test_the_next_iteration_starts_from_the_checkpoint(tmp_path):
    run = Run.create(config(iterations=2, tasks_per_iteration=2), tmp_path)
    run.go()
    first = str((tmp_path / "t/checkpoints/iter-001").resolve())
    assert f"write {first}" in Scripted.calls  # the challenger follows the executor
    assert (tmp_path / "t/checkpoints/iter-002/config.json").is_file()
    metrics = rows(tmp_path / "t/metrics.jsonl")
    assert sorted({row["iteration"] for row in metrics}) == [1, 2]


def test_a_fixed_challenger_stays_the_starting_model(tmp_path):
    Run.create(config(iterations=2, tasks_per_iteration=2, challenger_follows=False), tmp_path).go()
    writers = {call for call in Scripted.calls if call.startswith("write")}
    assert writers == {"write smollm2"}


def test_resume_after_a_crash_in_training_repeats_only_that_phase(tmp_path):
    run = Run.create(config(options={"fail": "true"}), tmp_path)
    with pytest.raises(RuntimeError, match="killed"):
        run.go()
    folder = tmp_path / "t/iterations/001"
    kept_before = (folder / "kept.jsonl").read_text()
    stamps = {
        name: (folder / name).stat().st_mtime_ns for name in ("kept.jsonl", "eval-before.json")
    }
    assert not (folder / "train.json").exists()
    assert (tmp_path / "t/checkpoints/iter-001.partial").is_dir()  # what the kill left

    config_path = tmp_path / "t/config.toml"
    config_path.write_text(config_path.read_text().replace('fail = "true"', 'fail = "false"'))
    phases = []
    Run.resume(tmp_path / "t", events=Events(phase=lambda n, p: phases.append(p))).go()
    assert phases == ["train", "eval-after"]
    assert (folder / "kept.jsonl").read_text() == kept_before
    assert {n: (folder / n).stat().st_mtime_ns for n in stamps} == stamps
    assert not (tmp_path / "t/checkpoints/iter-001.partial").exists()
    assert (tmp_path / "t/checkpoints/iter-001/config.json").is_file()


def test_a_finished_run_resumed_with_more_iterations_goes_on_from_its_last(tmp_path):
    Run.create(config(), tmp_path).go()
    Scripted.calls = []
    phases = []
    run = Run.resume(
        tmp_path / "t", iterations=2, events=Events(phase=lambda n, p: phases.append((n, p)))
    )
    assert RunConfig.from_toml((tmp_path / "t/config.toml").read_text()).iterations == 2
    run.go()
    assert {number for number, _ in phases} == {2}  # iteration 1 is not repeated
    assert (tmp_path / "t/checkpoints/iter-002/config.json").is_file()
    with pytest.raises(ScError, match="--iterations must be at least 1"):
        Run.resume(tmp_path / "t", iterations=0)


def test_sc_run_resume_changes_the_count_only_when_iterations_is_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Run.create(config(), Path("runs")).go()
    saved = Path("runs/t/config.toml")
    result = CliRunner().invoke(cli, ["run", "--name", "t", "--resume", "--json"])
    assert result.exit_code == 0, result.output
    assert RunConfig.from_toml(saved.read_text()).iterations == 1  # the default is not "given"
    result = CliRunner().invoke(cli, ["run", "--name", "t", "--resume", "--iterations", "2"])
    assert result.exit_code == 0, result.output
    assert RunConfig.from_toml(saved.read_text()).iterations == 2
    assert Path("runs/t/iterations/002/eval-after.json").is_file()


def test_a_task_an_earlier_iteration_kept_is_not_kept_again(tmp_path, monkeypatch):
    monkeypatch.setitem(globals(), "NUMBERS", itertools.cycle([2, 3]))  # the same two tasks
    Run.create(config(iterations=2, tasks_per_iteration=2), tmp_path).go()
    first, second = (tmp_path / f"t/iterations/00{n}" for n in (1, 2))
    assert len(rows(first / "kept.jsonl")) == 2
    assert rows(second / "kept.jsonl") == []
    kept_ids = [row["id"] for row in rows(first / "kept.jsonl")]
    reasons = [row["rejection"]["reason"] for row in rows(second / "rejected.jsonl")]
    assert reasons == [f"repeats the earlier task {i} (same instruction)" for i in kept_ids]


def test_resume_after_a_crash_in_the_challenge_phase_keeps_the_saved_chunks(tmp_path, monkeypatch):
    Scripted.writes_left = 3  # the first chunk of two is saved; the second dies
    with pytest.raises(RuntimeError, match="engine died"):
        Run.create(config(challenge_chunk=2), tmp_path).go()
    folder = tmp_path / "t/iterations/001"
    assert [row["seed"] for row in rows(folder / "attempts.jsonl")] == [100_000, 100_001]
    assert not (folder / "filter.json").exists()

    Scripted.writes_left, Scripted.calls = None, []
    Run.resume(tmp_path / "t").go()
    assert Scripted.calls.count("write smollm2") == 2  # only the attempts that were lost
    assert json.loads((folder / "filter.json").read_text())["attempts"] == 4
    assert len(rows(folder / "kept.jsonl")) == 4
    assert not (folder / "attempts.jsonl").exists()  # kept.jsonl and rejected.jsonl hold them


def test_no_kept_task_skips_training_and_says_so(tmp_path):
    notes = []
    run = Run.create(config(tasks_per_iteration=0), tmp_path, events=Events(note=notes.append))
    summary = run.go()
    assert summary["iterations"][0] == {
        "iteration": 1,
        "kept": 0,
        "pass_at_1_before": None,
        "pass_at_1_after": None,
    }
    assert any("no task to train on" in note for note in notes)
    assert not (tmp_path / "t/checkpoints").exists()


def test_training_that_changes_nothing_keeps_no_checkpoint_and_no_second_evaluation(tmp_path):
    phases, notes = [], []
    events = Events(phase=lambda n, p: phases.append(p), note=notes.append)
    run = Run.create(config(options={"unchanged": "true"}), tmp_path, events=events)
    run.go()
    assert phases == ["challenge", "eval-before", "train"]  # the same model: no eval-after
    folder = tmp_path / "t/iterations/001"
    assert (folder / "eval-after.json").read_text() == (folder / "eval-before.json").read_text()
    trained = json.loads((folder / "train.json").read_text())
    assert trained["checkpoint"] is None and trained["steps"][0]["trained"] is False
    assert not any((tmp_path / "t/checkpoints").glob("*"))
    assert any("no training step changed the weights" in note for note in notes)
    assert run.model_for(2) == run.config.model


def test_learnability_filter_drops_tasks_never_solved(tmp_path):
    phases = []
    events = Events(phase=lambda n, p: phases.append(p))
    run = Run.create(config(learnability=True, learnability_k=2), tmp_path, events=events)
    run.go()
    assert phases == ["challenge", "eval-before", "learnability"]  # nothing trained, no re-eval
    folder = tmp_path / "t/iterations/001"
    assert (folder / "eval-after.json").read_text() == (folder / "eval-before.json").read_text()
    learn = json.loads((tmp_path / "t/iterations/001/learnability.json").read_text())
    assert learn["tasks"] == 3 and learn["kept"] == 0  # the script always answers 42
    train = json.loads((tmp_path / "t/iterations/001/train.json").read_text())
    assert train["skipped"] == "no task to train on after the learnability filter"


def test_curriculum_guidance_groups_recent_tasks_by_pass_rate():
    rates = {"a": 1.0, "b": 0.75, "c": 0.5, "d": 0.25, "e": 0.0, "f": 0.1, "gone": 0.5}
    instructions = {key: f"Task {key.upper()}." for key in "abcdef"}
    instructions["f"] = "A long task: " + "word " * 40
    text = curriculum_guidance(rates, instructions, k=4, examples=2)
    lines = text.splitlines()
    assert lines[0] == "The executor tried each of your last 6 tasks 4 times."  # known ids only
    assert lines[1:4] == ["It solved 1 of them almost always (too easy):", "- Task A.",
                          "It solved 3 of them sometimes (the right difficulty):"]  # fmt: skip
    assert lines[4:6] == ["- Task B.", "- Task C."]  # at most two examples of each
    assert lines[6:8] == ["It solved 2 of them almost never (too hard):", "- Task E."]
    assert lines[8].endswith("...") and len(lines[8]) <= 122  # shortened
    assert "20% to 80% of its tries" in lines[-1]
    assert curriculum_guidance({}, instructions, k=4) == ""


def test_curriculum_implies_the_learnability_check_and_is_saved():
    settings = config(curriculum=True)
    assert settings.learnability is True
    assert RunConfig.from_toml(settings.to_toml()) == settings
    assert "curriculum = true" in settings.to_toml()


@pytest.fixture
def write_prompts(monkeypatch) -> list[str]:
    """The text of every prompt that asks the scripted model to write a task."""
    seen: list[str] = []
    generate = Scripted.generate

    def recording(self, prompts, params):
        texts = [self._tokenizer.decode(prompt) for prompt in prompts]
        seen.extend(text for text in texts if text.endswith("<instruction>"))
        return generate(self, prompts, params)

    monkeypatch.setattr(Scripted, "generate", recording)
    return seen


def test_curriculum_tells_the_next_challenger_how_the_executor_did(tmp_path, write_prompts):
    phases = []
    events = Events(phase=lambda n, p: phases.append((n, p)))
    settings = config(iterations=2, curriculum=True, learnability_k=1)
    Run.create(settings, tmp_path, events=events).go()
    assert (1, "learnability") in phases and (2, "learnability") in phases
    first, second = write_prompts[:4], write_prompts[4:]
    assert len(second) == 4 and not any("The executor tried" in text for text in first)
    root = tmp_path / "t/iterations"
    saved = json.loads((root / "002/curriculum.json").read_text())
    assert saved["from_iteration"] == 1 and not (root / "001/curriculum.json").exists()
    guidance = saved["guidance"]
    # from the pass rates the first iteration's learnability check measured on its 3 tasks
    learn = json.loads((root / "001/learnability.json").read_text())
    instructions = {row["id"]: row["instruction"] for row in rows(root / "001/kept.jsonl")}
    assert guidance == curriculum_guidance(learn["rates"], instructions, 1)
    assert guidance.startswith("The executor tried each of your last 3 tasks once.")
    assert "apples cost 7 each" in guidance
    assert all(guidance in text for text in second)


def test_the_challenge_phase_measures_the_kept_tasks_diversity(tmp_path):
    Run.create(config(), tmp_path).go()
    figures = json.loads((tmp_path / "t/iterations/001/filter.json").read_text())["diversity"]
    assert figures["tasks"] == 4 and figures["tools"] == {"multiply": 4}
    assert figures["tool_sequences"] == {"distinct": 1, "share": 0.25}  # the same call each time
    [row] = [row for row in rows(tmp_path / "t/metrics.jsonl") if row["kind"] == "filter"]
    assert row["diversity"] == figures  # what the report plots


@pytest.mark.parametrize("strategy", ["explore", "seeded"])
def test_every_built_in_strategy_writes_with_the_guidance(strategy, write_prompts):
    from sc_core.api import toolset
    from sc_core.challenge import ChallengeConfig
    from sc_core.plugins import registry

    settings = ChallengeConfig(guidance="Write a harder task than before.", explore_turns=1)
    challenger = registry("register_challengers")[strategy](Scripted("smollm2"), settings)
    challenger.attempt(toolset("calculator"), [0, 1])
    assert len(write_prompts) == 2
    assert all("Write a harder task than before." in text for text in write_prompts)


def test_phases_of_one_model_share_one_loaded_backend(tmp_path, monkeypatch):
    import sc_core.run

    loaded, closed = [], []

    def load(spec):
        backend = Scripted(spec.partition(":")[2])
        backend.close = lambda: closed.append(spec)
        loaded.append((spec, backend))
        return backend

    monkeypatch.setattr(sc_core.run, "load_model", load)
    Copy.rollout_models = []
    Run.create(config(), tmp_path).go()
    checkpoint = f"scripted:{(tmp_path / 't/checkpoints/iter-001').resolve()}"
    # challenge, eval-before and the first training rollouts: one engine; eval-after: another
    assert [spec for spec, _ in loaded] == ["scripted:smollm2", checkpoint]
    assert Copy.rollout_models == [loaded[0][1]]  # the trainer sampled from the served engine
    assert closed == ["scripted:smollm2", checkpoint]  # each closed once, nothing left open


def test_eval_tasks_replace_the_held_out_split(tmp_path):
    evals = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"
    run = Run.create(config(eval_tasks=str(evals), eval_k=1, tasks_per_iteration=2), tmp_path)
    run.go()
    before = json.loads((tmp_path / "t/iterations/001/eval-before.json").read_text())
    assert before["n_tasks"] == 34 and before["k"] == 1
    assert rows(tmp_path / "t/iterations/001/heldout.jsonl") == []


def test_evaluation_tasks_are_never_trained_on(tmp_path):
    # the evaluation set slipped in as extra candidates: it passes the filter, is evaluated,
    # and is never trained on (matched by instruction, whatever the id)
    evals = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"
    lines = [json.loads(line) | {"id": f"copy-{n}"} for n, line in enumerate(evals.open())]
    copies = tmp_path / "copies.jsonl"
    copies.write_text("".join(json.dumps(row) + "\n" for row in lines[:3]))
    settings = dict(eval_tasks=str(evals), eval_k=1, tasks_per_iteration=2, tasks=str(copies))
    Run.create(config(**settings), tmp_path).go()
    assert len(rows(tmp_path / "t/iterations/001/kept.jsonl")) == 5  # 2 written, 3 copies
    assert [call for call in Copy.trained_ids if call.startswith("copy-")] == []
    assert len(Copy.trained_ids) == 2


def test_an_existing_run_is_not_overwritten(tmp_path):
    Run.create(config(tasks_per_iteration=0), tmp_path).go()
    with pytest.raises(ScError, match="already exists: pass --resume"):
        Run.create(config(), tmp_path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"backend": "nope"}, "unknown RL backend 'nope'"),
        ({"shaper": "nope"}, "unknown reward shaper 'nope'"),
        ({"tools": "no_such_toolset_xyz"}, "no_such_toolset_xyz"),
        ({"eval_tasks": "/nonexistent.jsonl"}, "no such task file"),
        ({"challenge_chunk": 0}, "--challenge-chunk must be at least 1"),
        ({"options": {"nope": "1"}}, "CopySettings has no setting 'nope'"),
    ],
)
def test_bad_settings_fail_before_any_work(tmp_path, overrides, message):
    with pytest.raises(ScError, match=message):
        Run.create(config(**overrides), tmp_path)
    assert not (tmp_path / "t").exists()


def test_resume_needs_a_run_directory(tmp_path):
    with pytest.raises(ScError, match="not a run directory"):
        Run.resume(tmp_path)


@pytest.fixture
def budgets(monkeypatch) -> list[int]:
    """The ``max_new_tokens`` of every request the scripted model gets."""
    seen: list[int] = []
    generate = Scripted.generate

    def recording(self, prompts, params):
        seen.extend([params.max_new_tokens] * len(prompts))
        return generate(self, prompts, params)

    monkeypatch.setattr(Scripted, "generate", recording)
    return seen


def sc(*args: str):
    """The ``sc`` command in-process; its stderr is not a terminal."""
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result


SC_RUN = ["run", "--tools", "calculator", "--model", "scripted:smollm2", "--backend", "copy",
          "--eval-k", "1", "--workers", "1"]  # fmt: skip


def test_sc_run_prints_its_phases_and_counts_as_lines(tmp_path, monkeypatch, budgets):
    monkeypatch.chdir(tmp_path)
    # a budget smaller than any prompt: every episode turn gets the 1-token minimum
    result = sc(*SC_RUN, "--name", "t", "--tasks-per-iteration", "2", "--max-total-tokens", "1",
                "--task-tokens", "300")  # fmt: skip
    lines = result.stderr.splitlines()
    for phase in ("challenge", "eval-before", "train", "eval-after"):
        assert f"sc: iteration 1 {phase}: started" in lines
    assert any(line.startswith("sc: iteration 1 challenge: 2/2 attempts (") for line in lines)
    assert any(line.startswith("sc: iteration 1 eval-before: 1/1 episodes (") for line in lines)
    assert "max_total_tokens = 1" in (tmp_path / "runs/t/config.toml").read_text()
    # explorations, evaluations and training rollouts keep to it; the tasks get their tokens
    assert sorted(set(budgets)) == [1, 300]
    # it ends with what the run is for
    assert (
        result.stdout.rstrip()
        .splitlines()[-2]
        .startswith("held-out pass@1: 0.000 before, 0.000 after 1 iteration (+0.000)")
    )


def test_sc_run_prints_its_notes_as_lines(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    lines = sc(*SC_RUN, "--name", "t", "--tasks-per-iteration", "0").stderr.splitlines()
    assert "sc: note: iteration 1: no evaluation tasks yet; eval-before skipped" in lines
    assert "sc: note: iteration 1: no task to train on; the executor stays as it was" in lines


def test_sc_run_curriculum_is_saved_with_the_learnability_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sc(*SC_RUN, "--name", "t", "--tasks-per-iteration", "0", "--curriculum")
    saved = (tmp_path / "runs/t/config.toml").read_text()
    assert "curriculum = true" in saved and "learnability = true" in saved


def test_sc_challenge_json_has_the_kept_tasks_diversity(tmp_path):
    out = tmp_path / "tasks.jsonl"
    result = sc("challenge", "--tools", "calculator", "--model", "scripted:smollm2", "--strategy",
                "seeded", "-n", "2", "--json", "--out", str(out), "--workers", "1")  # fmt: skip
    figures = json.loads(result.stdout)["diversity"]
    assert figures["tasks"] == 2 and figures["tools_per_task"] == {"mean": 1, "counts": {"1": 2}}
    assert figures["tool_sequences"] == {"distinct": 1, "share": 0.5}


def test_sc_eval_limit_and_episode_limits(tmp_path, budgets):
    evals = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"
    result = sc("eval", "--tasks", str(evals), "--model", "scripted:smollm2", "--limit", "3",
                "-k", "2", "--max-new-tokens", "5", "--json", "--out", str(tmp_path), "--workers",
                "1")  # fmt: skip
    assert len(json.loads(result.stdout)["tasks"]) == 3
    assert budgets and set(budgets) == {5}
    assert result.stderr.splitlines()[-1].startswith("sc: eval: 6/6 episodes (")
