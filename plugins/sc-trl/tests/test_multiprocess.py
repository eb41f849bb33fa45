"""Training in two processes (accelerate launch, gloo on CPU) gives the checkpoint one process
gives on the same data, and rank 0 alone writes. The model is a 2-layer, 3M-parameter copy of
SmolLM2's architecture with random weights (its tokenizer is SmolLM2's): the processes' start,
not the model, is what these runs cost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sc_core import distributed
from sc_core.errors import ScError

HERE = Path(__file__).resolve().parent
EVALS = HERE.parents[2] / "evals"
QUIET = {"PYTHONWARNINGS": "ignore", "SC_BACKEND": "transformers"}


ZERO2 = """\
distributed_type: DEEPSPEED
deepspeed_config:
  zero_stage: 2
  gradient_accumulation_steps: 1
  offload_optimizer_device: none
  offload_param_device: none
mixed_precision: "no"
num_machines: 1
"""
"""An accelerate config for DeepSpeed ZeRO-2 (optimizer states and gradients sharded)."""


@pytest.fixture(scope="module")
def tiny_model(model_dir, tmp_path_factory) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    config.update(
        dict(num_hidden_layers=2, hidden_size=64, intermediate_size=128, head_dim=16)
        | dict(num_attention_heads=4, num_key_value_heads=2)
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tiny")
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path / "model.safetensors")


def largest_difference(left: dict, right: dict) -> float:
    assert left.keys() == right.keys()
    return max((left[key] - right[key]).abs().max().item() for key in left)


def run(line: list[str], cwd: Path) -> None:
    done = subprocess.run(
        line, cwd=cwd, env=os.environ | QUIET, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


def test_launch_command_runs_sc_core_under_accelerate(tmp_path):
    line = distributed.launch_command(["train", "t.jsonl"], 2)
    assert line[1:3] == ["-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in line and line[line.index("--num_processes") + 1] == "2"
    assert line[-4:] == ["-m", "sc_core", "train", "t.jsonl"]
    config = tmp_path / "zero2.yaml"
    config.write_text("distributed_type: DEEPSPEED\n")
    line = distributed.launch_command(["train"], 2, str(config))
    assert "--multi_gpu" not in line and line[line.index("--config_file") + 1] == str(config)
    with pytest.raises(ScError, match="no such file"):
        distributed.launch_command(["train"], 2, str(tmp_path / "missing.yaml"))


def test_shards_are_contiguous_blocks_that_cover_the_list_once(monkeypatch):
    items = list(range(7))
    parts = []
    for rank in range(3):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "3")
        parts.append(distributed.shard(items))
    assert parts == [[0, 1, 2], [3, 4], [5, 6]]
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ScError, match=r"batch_size \(3\) must divide evenly among 2"):
        distributed.per_process(3, "batch_size")


def test_rft_in_two_processes_saves_what_one_process_saves(tiny_model, tmp_path):
    """Greedy rollouts (temperature 0), every episode kept (min_reward 0): the runs train on
    the same 4 examples, 2 per optimizer step; two processes roll out 2 tasks each, once with
    DDP and once with DeepSpeed ZeRO-2 (DeepSpeed compiles its CPU collective op the first
    time, about 2 minutes, kept in ~/.cache/torch_extensions)."""
    (tmp_path / "tasks.jsonl").write_text(
        "".join((EVALS / "calculator.jsonl").read_text().splitlines(keepends=True)[:4])
    )
    sc = [sys.executable, "-m", "sc_core", "train", "tasks.jsonl", "--model", str(tiny_model)]
    sc += ["--max-turns", "1", "--max-new-tokens", "6", "--workers", "1"]
    for option in ("k=1", "batch_size=2", "temperature=0", "min_reward=0", "learning_rate=1e-3"):
        sc += ["--option", option]
    for option in ("epochs=1", "demonstrations=false", "lora=false"):  # every weight, once
        sc += ["--option", option]
    (tmp_path / "zero2.yaml").write_text(ZERO2)
    run([*sc, "--out", "one"], tmp_path)
    run([*sc, "--out", "two", "--processes", "2"], tmp_path)
    run([*sc, "--out", "zero2", "--processes", "2", "--accelerate-config", "zero2.yaml"], tmp_path)

    start, one, two = weights(tiny_model), weights(tmp_path / "one"), weights(tmp_path / "two")
    assert largest_difference(start, one) > 1e-3  # it trained
    assert largest_difference(one, two) < 1e-5
    assert largest_difference(one, weights(tmp_path / "zero2")) < 1e-5
    rows = [
        [json.loads(line) for line in (tmp_path / name / "train_metrics.jsonl").open()]
        for name in ("one", "two")
    ]
    # the round's rollouts, two optimizer steps, the trainer's summary: one row each, not two
    assert [row["step"] for row in rows[1]] == [row["step"] for row in rows[0]] == [0, 1, 2, 2]
    assert rows[1][0]["samples"] == 4 and rows[1][0]["kept"] == 4  # gathered from both
    for left, right in zip(rows[0][1:3], rows[1][1:3], strict=True):
        assert (right["loss"], right["num_tokens"]) == pytest.approx(
            (left["loss"], left["num_tokens"])
        )


def test_grpo_in_two_processes_saves_what_one_process_saves_and_rank_0_alone_writes(
    tiny_model, tmp_path
):
    """Replayed episodes (see multiprocess_job.py), 2 tasks × 2 generations per step: each
    process rolls out one task's group, TRL gathers the rewards for the advantages."""
    job = str(HERE / "multiprocess_job.py")
    for name in ("one", "two"):
        (tmp_path / name).mkdir()
    run([sys.executable, job, "grpo", str(tiny_model), "one/out", "one"], tmp_path)
    launch = distributed.launch_command([], 2)[:-2]  # the launcher, then a script
    run([*launch, job, "grpo", str(tiny_model), "two/out", "two"], tmp_path)

    start, one = weights(tiny_model), weights(tmp_path / "one/out")
    two = weights(tmp_path / "two/out")
    assert largest_difference(start, one) > 1e-3
    # Adam divides by the gradient's running size, which magnifies float noise in tiny
    # gradients: equal to 1% of the change
    assert largest_difference(one, two) < 2e-5
    records = [json.loads((tmp_path / f"two/record-{rank}.json").read_text()) for rank in "01"]
    assert records[0] == {"metrics": 2, "samples": [4, 4], "saves": 1}  # both shares, gathered
    assert records[1] == {"metrics": 0, "samples": [], "saves": 0}
    assert json.loads((tmp_path / "one/record-0.json").read_text()) == records[0]


def test_sc_runs_training_phase_in_two_processes(tiny_model, calculator_tasks, tmp_path):
    """``sc run --processes 2``: the phase runs ``sc train`` under accelerate launch and keeps
    what the one-process phase keeps (train.json's steps, the trajectories, the checkpoint)."""
    from sc_core.run import Run, RunConfig
    from sc_core.sandbox import Limits, SandboxPool, get_sandbox

    options = {"k": "1", "batch_size": "2", "temperature": "0", "min_reward": "0", "epochs": "1"}
    options |= {"demonstrations": "false", "lora": "false"}  # every weight, own episodes only
    config = RunConfig(
        tools="calculator", model=f"transformers:{tiny_model}", name="mp", processes=2,
        max_turns=1, max_new_tokens=6, workers=1, options=options,
    )  # fmt: skip
    run = Run.create(config, tmp_path / "runs")
    folder = run.dir.iteration(1)
    folder.mkdir(parents=True)
    with SandboxPool(get_sandbox(None), Limits(wall_s=60), 1) as pool:
        run.train(1, folder, config.model, calculator_tasks[:2], pool)

    train = json.loads((folder / "train.json").read_text())
    assert train["tasks"] == 2 and [row["step"] for row in train["steps"]] == [0, 1, 1]
    checkpoint = Path(train["checkpoint"])
    assert sorted(path.name for path in checkpoint.iterdir()) == [
        "chat_template.jinja", "config.json", "generation_config.json", "model.safetensors",
        "tokenizer.json", "tokenizer_config.json",
    ]  # fmt: skip
    trajectories = run.dir.trajectories(1, "train")
    assert sorted(json.loads(line)["task_id"] for line in trajectories.open()) == sorted(
        task.id for task in calculator_tasks[:2]
    )
