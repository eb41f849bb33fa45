"""Rejection fine-tuning (``rft``), the paper's main setting: sample, keep what passes, imitate it.

Each round samples ``k`` episodes per task with sc's own agent loop on the current weights (the
first round from ``TrainJob.rollout_model`` where one is given: vLLM serving the same weights),
scores them with the tasks' verifiers (:func:`sc_core.train.rollouts`), keeps the episodes whose
reward reaches ``min_reward`` and fine-tunes on them with TRL's ``SFTTrainer``. The loss covers
the model's own tokens only: the prompt, tool results and the chat template's glue between turns
(``completion_mask`` 0) are labelled -100. A round in which nothing passes trains nothing: it is
recorded in the metrics, the checkpoint is saved unchanged and training stops there.

torch, transformers, trl and peft are imported when training starts, not when sc starts.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from sc_core import distributed
from sc_core.demonstrations import demonstrate
from sc_core.errors import ScError
from sc_core.train import RLBackend, Sample, TrainJob, rollouts

from .checkpoint import save
from .quiet import quiet

IGNORE = -100
"""The label transformers' loss skips."""


@dataclass
class RFTConfig:
    """Settings of rejection fine-tuning (``sc train --backend rft --option key=value``)."""

    k: int = 4
    """Episodes sampled per task in each round (the paper: more distinct tasks help more than
    more episodes per task)."""
    rounds: int = 1
    """Sample-filter-train rounds; each samples from the weights the previous one trained."""
    epochs: int = 2
    """Passes over one round's kept episodes."""
    learning_rate: float = 1e-4
    """AdamW learning rate, constant (1e-4 suits LoRA; about 1e-5 suits ``lora=false``)."""
    batch_size: int = 1
    """Episodes per optimizer step."""
    min_reward: float = 1.0
    """An episode is kept when its shaped reward is at least this."""
    temperature: float = 0.7
    """Sampling temperature of the rollouts (replaces the agent config's)."""
    dedupe: bool = True
    """Keep one copy of identical completions of the same task."""
    max_samples_per_task: int = 0
    """At most this many kept episodes per task, highest reward first; 0: no limit."""
    demonstrations: bool = True
    """The first round also imitates each task's example solution, replayed as an episode in
    the executor's own tool-call format (:mod:`sc_core.demonstrations`) and kept, like its own
    episodes, only where the verifier passes it: a small executor that rarely succeeds still
    has something to learn from. With them, qwen-coder-0.5b's calculator pass@1 went from 0.074
    to 0.147 in one iteration; its own 20 episodes had solved none of the 5 tasks."""
    lora: bool = True
    """Train LoRA adapters (peft) instead of every weight; merged into the model before saving.
    Its optimizer holds state for the adapters only, and the learning runs above used it."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower (large models)."""
    seed: int = 0
    """Seeds sampling (seed + round) and training."""

    def __post_init__(self) -> None:
        positive = ("k", "rounds", "epochs", "batch_size", "lora_r", "lora_alpha")
        for name in positive:
            if getattr(self, name) < 1:
                raise ScError(f"rft setting {name} must be at least 1, got {getattr(self, name)}")
        if self.max_samples_per_task < 0:
            raise ScError("rft setting max_samples_per_task must be 0 (no limit) or more")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ScError(f"rft setting learning_rate must be positive, got {self.learning_rate}")
        if not (self.temperature >= 0 and math.isfinite(self.temperature)):
            raise ScError(f"rft setting temperature must be 0 or more, got {self.temperature}")
        if not math.isfinite(self.min_reward):
            raise ScError(f"rft setting min_reward must be a number, got {self.min_reward}")


def select(samples: list[Sample], config: RFTConfig) -> list[Sample]:
    """The samples to imitate: reward at least ``min_reward``, with model tokens to learn from,
    optionally one per distinct completion and at most ``max_samples_per_task`` per task
    (highest reward first, then sampling order)."""
    kept: dict[str, list[Sample]] = {}
    seen: set[tuple[str, tuple[int, ...]]] = set()
    ranked = sorted(enumerate(samples), key=lambda pair: (-pair[1].reward, pair[0]))
    for _, sample in ranked:
        episode = sample.episode
        if sample.reward < config.min_reward or 1 not in episode.completion_mask:
            continue
        task = str(episode.task_id or sample.scored.task_id)
        key = (task, tuple(episode.completion_ids))
        if config.dedupe and key in seen:
            continue
        bucket = kept.setdefault(task, [])
        if config.max_samples_per_task and len(bucket) >= config.max_samples_per_task:
            continue
        seen.add(key)
        bucket.append(sample)
    chosen = {id(sample) for bucket in kept.values() for sample in bucket}
    return [sample for sample in samples if id(sample) in chosen]


def to_example(episode: Any) -> dict[str, list[int]]:
    """``input_ids`` (prompt + completion) and ``labels``: the completion's model-generated tokens
    (mask 1), -100 on the prompt and on masked tokens; trailing masked tokens are dropped."""
    mask = list(episode.completion_mask)
    completion = list(episode.completion_ids)
    if len(mask) != len(completion):
        raise ValueError(
            f"episode has {len(completion)} completion tokens but {len(mask)} mask entries"
        )
    while mask and not mask[-1]:
        mask.pop()
        completion.pop()
    labels = [IGNORE] * len(episode.prompt_ids)
    labels += [token if keep else IGNORE for token, keep in zip(completion, mask, strict=True)]
    return {"input_ids": list(episode.prompt_ids) + completion, "labels": labels}


def build_examples(samples: list[Sample], config: RFTConfig) -> list[dict[str, list[int]]]:
    """The training rows for one round: :func:`to_example` of every :func:`select` ed sample."""
    return [to_example(sample.episode) for sample in select(samples, config)]


def check_tokenizer(sampler: Any, tokenizer: Any) -> None:
    """Rollouts from another engine (vLLM, a teacher) are trained on as token ids, which mean
    the same only when both tokenizers have the same vocabulary."""
    if sampler is not None and sampler.tokenizer.get_vocab() != tokenizer.get_vocab():
        raise ScError(
            f"rft: the rollouts' model {sampler.model_id!r} has another tokenizer than the "
            "model being trained; a teacher must share the executor's tokenizer"
        )


def sharded(job: TrainJob, episodes: Callable[[list], list[Sample]]) -> list[Sample]:
    """``episodes(tasks)`` over all of the job's tasks, in task order. Under ``accelerate
    launch`` each process plays its block of the tasks and the samples are gathered, so N
    processes play the round once between them and all train on the same examples."""
    mine = distributed.shard(job.tasks)
    return distributed.gather(episodes(mine) if mine else [])


def round_metrics(round_: int, played: list[Sample], kept: int, config: RFTConfig) -> dict:
    """What one round's rollouts and demonstrations looked like."""
    samples = [sample for sample in played if not sample.demonstration]
    shown = [sample for sample in played if sample.demonstration]
    n = len(samples)
    successes = sum(sample.reward >= config.min_reward for sample in samples)
    passed = sum(sample.scored.passed for sample in samples)
    tasks = {sample.scored.task_id for sample in samples}
    solved = {s.scored.task_id for s in samples if s.reward >= config.min_reward}
    return {
        "round": round_,
        "samples": n,
        "successes": successes,
        "success_rate": successes / n if n else 0.0,
        "pass_rate": passed / n if n else 0.0,
        "reward": sum(sample.reward for sample in samples) / n if n else 0.0,
        "tasks": len(tasks),
        "tasks_solved": len(solved),
        "demonstrations": len(shown),
        "demonstrations_passed": sum(sample.reward >= config.min_reward for sample in shown),
        "kept": kept,
    }


class RFTBackend(RLBackend):
    """Rejection fine-tuning on the executor's own successful episodes."""

    name = "rft"
    Config = RFTConfig

    def train(self, job: TrainJob) -> Path:
        import torch

        distributed.name_deepspeed_accelerator(torch.cuda.is_available())
        with quiet():
            return self._train(job)

    def _train(self, job: TrainJob) -> Path:
        import torch
        from accelerate import PartialState
        from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed

        from sc_core.agent import Agent
        from sc_core.default_plugins.transformers_backend import TransformersBackend
        from sc_core.model_sources import load_error
        from sc_core.models import resolve_model

        config: RFTConfig = self.config
        if not job.tasks:
            raise ScError("rft: no tasks to train on")
        distributed.per_process(config.batch_size, "rft setting batch_size")
        job = job.for_this_process()
        path = resolve_model(job.model)
        # Under accelerate launch: joins the other processes now (the rollouts are gathered
        # before the trainer exists) and gives this process's device (cuda:RANK on GPUs).
        device = PartialState().device
        try:
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device)
        except (OSError, ValueError) as error:
            raise ScError(f"rft: {load_error(job.model, error)}") from None
        check_tokenizer(job.rollout_model, tokenizer)
        agent_config = dataclasses.replace(job.agent, temperature=config.temperature)
        step = 0
        for round_ in range(1, config.rounds + 1):
            set_seed(config.seed + round_)
            model.eval()
            sampler = job.rollout_model if round_ == 1 else None  # the weights it serves
            agent = Agent(
                sampler or TransformersBackend.from_loaded(model, tokenizer), agent_config
            )
            samples = sharded(
                job,
                partial(
                    rollouts,
                    agent=agent,
                    pool=job.pool,
                    k=config.k,
                    shaper=job.shaper,
                    tools=job.tools,
                ),
            )
            if sampler is not None:
                job.release_rollout_model()  # free its memory for training
            shown = []
            if config.demonstrations and round_ == 1:
                player = Agent(TransformersBackend.from_loaded(model, tokenizer), agent_config)
                shown = sharded(
                    job,
                    partial(
                        demonstrate, agent=player, pool=job.pool, shaper=job.shaper, tools=job.tools
                    ),
                )
            samples += shown
            job.on_samples(samples)
            examples = build_examples(samples, config)
            metrics = round_metrics(round_, samples, len(examples), config)
            if not examples:
                job.on_metrics(metrics | {"step": step, "trained": False})
                break
            tokens = sum(sum(label != IGNORE for label in row["labels"]) for row in examples)
            job.on_metrics(metrics | {"step": step, "trained": True, "train_tokens": tokens})
            model, step = self._fit(model, tokenizer, examples, job, round_, step)
        return save(model, tokenizer, job.out_dir)

    def _fit(
        self,
        model: Any,
        tokenizer: Any,
        examples: list[dict],
        job: TrainJob,
        round_: int,
        step: int,
    ) -> tuple[Any, int]:
        """One round of supervised fine-tuning on ``examples``; the updated (merged) model and
        the global step after it."""
        import torch
        from datasets import Dataset
        from transformers import TrainerCallback
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTConfig, SFTTrainer

        config: RFTConfig = self.config
        offset = step

        class Forward(TrainerCallback):
            """Each logged figure set to ``job.on_metrics``, with a run-wide ``step``."""

            def on_log(self, args, state, control, logs=None, **kwargs):
                row = {
                    key: value
                    for key, value in (logs or {}).items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)
                }
                if row:
                    job.on_metrics({"round": round_, "step": offset + state.global_step} | row)

        peft_config = None
        if config.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=config.lora_r,
                lora_alpha=config.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
        cuda = torch.cuda.is_available()
        with tempfile.TemporaryDirectory(prefix="sc-rft-") as scratch:
            args = SFTConfig(
                output_dir=scratch,
                num_train_epochs=config.epochs,
                per_device_train_batch_size=distributed.per_process(
                    config.batch_size, "rft setting batch_size"
                ),
                learning_rate=config.learning_rate,
                lr_scheduler_type="constant",
                warmup_steps=0,
                logging_steps=1,
                save_strategy="no",
                report_to="none",
                disable_tqdm=True,
                seed=config.seed + round_,
                bf16=cuda and torch.cuda.is_bf16_supported(),
                use_cpu=not cuda,  # else, on CPU, each process would train alone (no DDP)
                ddp_find_unused_parameters=False,  # every weight is used: no extra pass
                gradient_checkpointing=config.gradient_checkpointing,
                dataloader_pin_memory=cuda,
                max_length=None,
                packing=False,
            )
            trainer = SFTTrainer(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(examples),
                processing_class=tokenizer,
                peft_config=peft_config,
                callbacks=[Forward()],
            )
            trainer.remove_callback(PrinterCallback)  # figures go to job.on_metrics, not stdout
            trainer.train()
            step = offset + trainer.state.global_step
            model = trainer.model
        if config.lora:
            model = model.merge_and_unload()
        if config.gradient_checkpointing:
            model.gradient_checkpointing_disable()
        model.config.use_cache = True
        model.eval()
        return model, step
