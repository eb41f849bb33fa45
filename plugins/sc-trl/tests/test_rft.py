"""Rejection fine-tuning (sc_trl.rft): which episodes are kept, how their labels are masked, and
real training runs of the embedded model on CPU (a success, no success, a bad setting)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sc_trl.rft import IGNORE, RFTBackend, RFTConfig, build_examples, select, to_example

from sc_core.agent import AgentConfig, Episode
from sc_core.errors import ScError
from sc_core.evaluate import Scored
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import read_tasks
from sc_core.train import Sample, TrainJob, build_config

ROOT = Path(__file__).resolve().parents[3]
EVALS = ROOT / "evals"
MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "tokenizer.json").is_file(),
    reason=f"the converted SmolLM2 model is missing at {MODEL_DIR} (load smollm2 once to make it)",
)


def sample(task_id: str, completion: list[int], mask: list[int], reward: float) -> Sample:
    episode = Episode(
        task_id, 0, [], prompt_ids=[1, 2, 3], completion_ids=completion, completion_mask=mask
    )
    return Sample(Scored(task_id, episode, reward), reward)


# -- the dataset ---------------------------------------------------------------------------------


def test_labels_mask_the_prompt_and_every_masked_token():
    episode = sample("t", [10, 11, 12, 13, 14, 15, 16], [1, 1, 0, 0, 1, 0, 0], 1.0).episode
    example = to_example(episode)
    assert example["input_ids"] == [1, 2, 3, 10, 11, 12, 13, 14]  # trailing glue dropped
    assert example["labels"] == [IGNORE, IGNORE, IGNORE, 10, 11, IGNORE, IGNORE, 14]
    mask = [0, 0, 0] + episode.completion_mask[:5]
    for token, label, keep in zip(example["input_ids"], example["labels"], mask, strict=True):
        assert label == (token if keep else IGNORE)


def test_a_mismatched_mask_is_refused():
    with pytest.raises(ValueError, match="mask"):
        to_example(sample("t", [10, 11], [1], 1.0).episode)


def test_select_keeps_successes_dedupes_and_caps_per_task():
    samples = [
        sample("a", [10, 11], [1, 1], 0.0),  # failed
        sample("a", [12, 13], [1, 1], 1.0),
        sample("a", [12, 13], [1, 1], 1.0),  # duplicate
        sample("a", [14], [1], 1.0),
        sample("b", [15], [0], 1.0),  # nothing the model wrote
        sample("b", [16], [1], 1.0),
    ]
    config = RFTConfig()
    assert select(samples, config) == [samples[1], samples[3], samples[5]]
    assert len(select(samples, RFTConfig(dedupe=False))) == 4
    assert select(samples, RFTConfig(max_samples_per_task=1)) == [samples[1], samples[5]]
    assert select(samples, RFTConfig(min_reward=0.0)) == [
        samples[0],
        samples[1],
        samples[3],
        samples[5],
    ]
    assert [row["input_ids"][3:] for row in build_examples(samples, config)] == [
        [12, 13],
        [14],
        [16],
    ]


# -- settings ------------------------------------------------------------------------------------


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ScError, match="k"):
        build_config(RFTBackend.Config, {"k": "x"})
    with pytest.raises(ScError, match="k must be at least 1"):
        build_config(RFTBackend.Config, {"k": "0"})
    with pytest.raises(ScError, match="no setting"):
        build_config(RFTBackend.Config, {"steps": "3"})
    config = build_config(RFTBackend.Config, {"k": "3", "lora": "true", "learning_rate": "1e-4"})
    assert (config.k, config.lora, config.learning_rate) == (3, True, 1e-4)
    assert RFTBackend.name == "rft"


# -- training the embedded model -----------------------------------------------------------------


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(get_sandbox(None), Limits(), 1) as pool:
        yield pool


@pytest.fixture(scope="module")
def tasks():
    by_id = {item.task.id: item.task for item in read_tasks(EVALS / "calculator.jsonl")}
    return [by_id["calc-001"], by_id["calc-002"]]


def job(tasks, pool, out_dir, shaper, metrics, batches, **agent) -> TrainJob:
    return TrainJob(
        tasks=tasks,
        model="smollm2",
        out_dir=out_dir,
        pool=pool,
        shaper=shaper,
        agent=AgentConfig(**({"max_turns": 2, "max_new_tokens": 24} | agent)),
        on_metrics=metrics.append,
        on_samples=batches.append,
    )


def weights(path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def changed(start: str, out: Path) -> bool:
    before, after = weights(start), weights(out)
    assert before.keys() == after.keys()
    return any(not before[name].equal(after[name]) for name in before)


@needs_model
def test_training_on_successes_changes_the_weights(tasks, pool, tmp_path):
    from sc_core.models import resolve_model

    metrics, batches = [], []
    config = RFTConfig(k=2, batch_size=2, demonstrations=False, lora=False)  # every weight
    out = RFTBackend(config).train(
        job(
            tasks,
            pool,
            tmp_path / "ckpt",
            lambda score, ep: float(ep["turns"] >= 1),
            metrics,
            batches,
        )
    )
    assert out == tmp_path / "ckpt" and (out / "config.json").is_file()
    assert (out / "tokenizer.json").is_file()

    (samples,) = batches
    assert len(samples) == 4 and all(item.reward == 1.0 for item in samples)
    for example, item in zip(build_examples(samples, config), samples, strict=True):
        episode = item.episode  # a real episode: its template glue is masked out
        prompt = len(episode.prompt_ids)
        assert example["labels"][:prompt] == [IGNORE] * prompt
        for label, token, keep in zip(
            example["labels"][prompt:],
            episode.completion_ids,
            episode.completion_mask,
            strict=False,
        ):
            assert label == (token if keep else IGNORE)

    summary = metrics[0]
    assert summary["round"] == 1 and summary["samples"] == 4 and summary["successes"] == 4
    assert summary["success_rate"] == 1.0 and summary["reward"] == 1.0
    assert summary["trained"] is True and summary["kept"] >= 1
    losses = [row for row in metrics if "loss" in row]
    assert [row["step"] for row in losses] == list(range(1, len(losses) + 1))
    assert all(row["loss"] > 0 and row["round"] == 1 for row in losses)
    assert changed(resolve_model("smollm2"), out)


@needs_model
def test_lora_rounds_merge_and_sample_from_the_trained_weights(tasks, pool, tmp_path):
    from sc_core.models import resolve_model

    metrics, batches = [], []
    config = RFTConfig(
        k=1, rounds=2, epochs=1, demonstrations=False, learning_rate=1e-3, lora_r=4, lora_alpha=8
    )
    out = RFTBackend(config).train(
        job(
            tasks[:1],
            pool,
            tmp_path / "ckpt",
            lambda score, ep: 1.0,
            metrics,
            batches,
            max_turns=1,
            max_new_tokens=8,
        )
    )
    assert len(batches) == 2 and not (out / "adapter_config.json").exists()  # merged
    rounds = [row for row in metrics if "successes" in row]
    assert [row["round"] for row in rounds] == [1, 2]
    losses = [row for row in metrics if "loss" in row]
    assert [(row["round"], row["step"]) for row in losses] == [(1, 1), (2, 2)]
    assert rounds[1]["step"] == 1  # the second round starts where the first ended
    assert changed(resolve_model("smollm2"), out)


@needs_model
def test_demonstrations_are_imitated_where_the_executor_fails_on_its_own(tasks, pool, tmp_path):
    from sc_core.models import resolve_model
    from sc_core.toolcalls import FINAL_ANSWER_TOOL
    from sc_core.train import get_shaper

    metrics, batches = [], []
    config = RFTConfig(k=1, demonstrations=True, learning_rate=1e-4, batch_size=1)
    out = RFTBackend(config).train(
        job(tasks, pool, tmp_path / "ckpt", get_shaper(None), metrics, batches, max_turns=3)
    )
    (samples,) = batches
    own, shown = samples[:2], samples[2:]  # k=1 rollout per task, then one replay per task
    assert [item.scored.task_id for item in shown] == [task.id for task in tasks]
    assert [item.demonstration for item in samples] == [False, False, True, True]
    assert samples[2].to_dict()["demonstration"] is True  # as the trajectories record it
    for item in shown:  # each solution's tool call, then final_answer with its result
        assert item.reward == 1.0 and item.episode.finish == "answer"
        turns = [m for m in item.episode.messages if m["role"] == "assistant"]
        assert [turn["tool_calls"][0]["function"]["name"] for turn in turns][-1] == (
            FINAL_ANSWER_TOOL
        )
    summary = metrics[0]
    assert summary["samples"] == len(own) == 2
    assert summary["demonstrations"] == summary["demonstrations_passed"] == 2
    assert summary["trained"] is True and summary["kept"] >= 2
    assert changed(resolve_model("smollm2"), out)


@needs_model
def test_no_success_saves_the_unchanged_model(tasks, pool, tmp_path):
    from sc_core.models import load_model, resolve_model

    metrics, batches = [], []
    config = RFTConfig(k=2, rounds=2)
    out = RFTBackend(config).train(
        job(
            tasks[:1],
            pool,
            tmp_path / "ckpt",
            lambda score, ep: 0.0,
            metrics,
            batches,
            max_turns=1,
            max_new_tokens=8,
        )
    )
    assert len(batches) == 1  # it stops after the first round that keeps nothing
    assert metrics == [
        metrics[0] | {"round": 1, "samples": 2, "successes": 0, "kept": 0, "trained": False}
    ]
    assert metrics[0]["success_rate"] == 0.0 and metrics[0]["reward"] == 0.0
    assert not changed(resolve_model("smollm2"), out)
    assert load_model(str(out)).tokenizer is not None  # what `sc eval --model DIR` loads


def test_an_unknown_model_is_a_one_line_error(tasks, pool, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    unknown = job(tasks, pool, tmp_path / "ckpt", lambda score, ep: score, [], [])
    unknown.model = "nosuch"
    with pytest.raises(ScError) as error:
        RFTBackend(RFTConfig()).train(unknown)
    message = str(error.value)
    assert message.startswith("rft: no model named 'nosuch': not an alias (smollm2")
    assert message.endswith("the Hugging Face hub could not be reached") and "\n" not in message


@needs_model
def test_the_first_rollouts_come_from_the_serving_engine_which_is_then_released(
    tasks, pool, tmp_path
):
    from sc_core.models import load_model

    sampler = load_model("transformers:smollm2")
    sampled, released, metrics, batches = [], [], [], []
    generate = sampler.generate_continuously
    sampler.generate_continuously = lambda *a: sampled.append(1) or generate(*a)
    training = job(tasks[:1], pool, tmp_path / "ckpt", lambda s, ep: 0.0, metrics, batches)
    training.agent = AgentConfig(max_turns=1, max_new_tokens=8)
    training.rollout_model = sampler
    training.release_rollout_model = lambda: released.append(1)
    RFTBackend(RFTConfig(k=1)).train(training)
    assert sampled and released == [1]  # sampled there, then freed before any training
    assert len(batches) == 1 and metrics[0]["samples"] == 1


@needs_model
def test_a_teacher_with_another_tokenizer_is_a_one_line_error(tasks, pool, tmp_path):
    class Vocabulary:
        def get_vocab(self):
            return {"<other>": 0}

    class Teacher:
        model_id = "other-family"
        tokenizer = Vocabulary()

    training = job(tasks[:1], pool, tmp_path / "ckpt", lambda s, ep: 0.0, [], [])
    training.rollout_model = Teacher()
    with pytest.raises(ScError, match="'other-family' has another tokenizer than the model"):
        RFTBackend(RFTConfig(k=1)).train(training)
