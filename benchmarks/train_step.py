"""GRPO step time through sc (its ``grpo`` backend) against plain TRL ``GRPOTrainer``, in one run.

    .venv/bin/python benchmarks/train_step.py [--steps 3] [--tasks 2] [--num-generations 4]

Both train the embedded model on the same single-turn prompts (sc's system prompt with the
calculator's tools, then a calculator task), with the same group size, learning rate and
completion length: every completion is exactly ``--tokens`` long (``min_new_tokens`` equal to the
limit on both sides), so the two do the same model work. sc adds its agent loop and the tasks'
verifiers in the sandbox; plain TRL uses a constant-time reward. The first step of each is a
warm-up; the figures are the mean over the next ``--steps``: wall seconds per step, process CPU
seconds per step (steadier on a shared machine) and completion tokens per step. The ratio is
sc / plain. Target: at most 1.15.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

from sc_trl.grpo import GRPOBackend, GRPOSettings  # noqa: E402

from sc_core.agent import Agent, AgentConfig, EpisodeSpec  # noqa: E402
from sc_core.models import load_model, resolve_model  # noqa: E402
from sc_core.sandbox import Limits, SandboxPool, get_sandbox  # noqa: E402
from sc_core.task import read_tasks  # noqa: E402
from sc_core.tools import load_toolset  # noqa: E402
from sc_core.train import TrainJob, get_shaper  # noqa: E402

EVALS = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"


class Clock:
    """Wall and process-CPU time at each logged step."""

    def __init__(self):
        self.marks: list[tuple[float, float]] = []
        self.tokens: list[float] = []

    def mark(self, row: dict) -> None:
        self.marks.append((time.perf_counter(), time.process_time()))
        self.tokens.append(row.get("completions/mean_length", 0.0))

    def per_step(self, batch: int) -> tuple[float, float, float]:
        """Mean wall s, CPU s and completion tokens per step, the first (warm-up) step left out."""
        (wall0, cpu0), (wall1, cpu1) = self.marks[0], self.marks[-1]
        steps = len(self.marks) - 1
        tokens = sum(self.tokens[1:]) / steps * batch
        return (wall1 - wall0) / steps, (cpu1 - cpu0) / steps, tokens


def fixed_length_copy(source: str, tokens: int, into: Path) -> Path:
    """The checkpoint with ``min_new_tokens`` set in its generation config (files linked)."""
    import json

    for item in Path(source).iterdir():
        if item.name != "generation_config.json":
            (into / item.name).symlink_to(item)
    config_path = Path(source) / "generation_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    (into / "generation_config.json").write_text(json.dumps(config | {"min_new_tokens": tokens}))
    return into


def run_sc(model: str, tasks, pool, args, agent: AgentConfig) -> Clock:
    clock = Clock()
    settings = GRPOSettings(
        steps=args.steps + 1,
        batch_size=len(tasks),
        num_generations=args.num_generations,
        learning_rate=1e-6,
    )
    with tempfile.TemporaryDirectory() as out:
        job = TrainJob(tasks, model, Path(out), pool, get_shaper("binary"), agent=agent)
        job.on_metrics = clock.mark
        GRPOBackend(settings).train(job)
    return clock


def run_plain(model: str, prompts: list[str], args) -> Clock:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    clock = Clock()

    class Mark(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                clock.mark(logs)

    def reward(completions, **kwargs):
        return [random.random() for _ in completions]

    with tempfile.TemporaryDirectory() as scratch:
        config = GRPOConfig(
            output_dir=scratch,
            max_steps=args.steps + 1,
            per_device_train_batch_size=len(prompts) * args.num_generations,
            num_generations=args.num_generations,
            learning_rate=1e-6,
            lr_scheduler_type="constant",
            temperature=1.0,
            max_completion_length=args.tokens,
            generation_kwargs={"min_new_tokens": args.tokens},
            logging_steps=1,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
            bf16=torch.cuda.is_available(),
        )
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
            reward_funcs=[reward],
            args=config,
            train_dataset=Dataset.from_list([{"prompt": prompt} for prompt in prompts]),
            processing_class=AutoTokenizer.from_pretrained(model),
            callbacks=[Mark()],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    return clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="measured steps (after 1 warm-up)")
    parser.add_argument("--tasks", type=int, default=2, help="tasks (prompts) per step")
    parser.add_argument("--num-generations", type=int, default=4)
    parser.add_argument("--tokens", type=int, default=32, help="completion length, forced")
    args = parser.parse_args()

    tasks = [item.task for item in read_tasks(EVALS) if item.task][: args.tasks]
    agent = AgentConfig(max_turns=1, max_new_tokens=args.tokens, temperature=1.0)
    with tempfile.TemporaryDirectory() as folder:
        model = str(fixed_length_copy(resolve_model("smollm2"), args.tokens, Path(folder)))
        renderer = Agent(load_model(f"transformers:{model}"), agent)
        tools = load_toolset("calculator")
        prompt_ids = [
            renderer.start(EpisodeSpec(t.instruction, tools.create(), t.seed)).episode.prompt_ids
            for t in tasks
        ]
        prompts = [renderer.model.tokenizer.decode(ids) for ids in prompt_ids]
        del renderer

        batch = len(tasks) * args.num_generations
        plain = run_plain(model, prompts, args).per_step(batch)
        with SandboxPool(get_sandbox(None), Limits(), 2) as pool:
            sc = run_sc(model, tasks, pool, args, agent).per_step(batch)

    length = sum(map(len, prompt_ids)) / len(prompt_ids)
    print(
        f"GRPO step, smollm2 on {'GPU' if _cuda() else 'CPU'}: {len(tasks)} prompts "
        f"(~{length:.0f} tokens) x {args.num_generations} generations x {args.tokens} tokens, "
        f"{args.steps} steps after 1 warm-up"
    )
    for name, (wall, cpu, tokens) in (("plain TRL", plain), ("sc grpo  ", sc)):
        print(f"  {name}: {wall:6.2f} s/step wall, {cpu:6.2f} s/step CPU, {tokens:4.0f} tok/step")
    ratio_wall, ratio_cpu = sc[0] / plain[0], sc[1] / plain[1]
    verdict = "met" if ratio_wall <= 1.15 else "MISSED"
    print(f"  sc / plain: {ratio_wall:.2f} wall, {ratio_cpu:.2f} CPU (target <= 1.15: {verdict})")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


if __name__ == "__main__":
    main()
