"""GRPO (``grpo``): TRL's ``GRPOTrainer``, with sc's multi-turn agent loop as its rollout.

The dataset has one row per task, its prompt message carrying the task's index (``sc_task``),
since ``rollout_func`` sees only the prompts. TRL's sampler draws ``batch_size`` tasks per step
and repeats each ``num_generations`` times (adjacent), then hands that list of prompts to
``rollout_func`` (:class:`Rollout`), which must return one completion per entry, in order. The
rollout runs those episodes with sc's agent over the weights being trained (tool calls executed on
fresh toolsets, their results appended), scores them with the tasks' verifiers in the sandbox
(:func:`sc_core.train.rollouts`) and gives TRL the token ids exactly as generated. Tool results
and the chat template's glue carry ``env_mask`` 0, so the loss covers the model's own tokens only.
The shaped reward travels to TRL as an extra field that the one reward function returns as is.

torch, transformers, trl and peft are imported when training starts, not when sc starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import math
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sc_core import distributed
from sc_core.errors import ScError
from sc_core.models import Generation, ModelBackend, SamplingParams
from sc_core.train import RLBackend, Sample, TrainJob

from .checkpoint import save
from .quiet import quiet


@dataclass
class GRPOSettings:
    """Settings of GRPO (``sc train --backend grpo --option key=value``). Turn and token limits
    come from the agent config (``--max-turns``, ``--max-new-tokens``)."""

    steps: int = 2
    """Optimizer steps (TRL's ``max_steps``); each samples fresh episodes."""
    batch_size: int = 2
    """Tasks per step (at most the number of tasks); each is rolled out num_generations times."""
    num_generations: int = 4
    """Episodes per task in a step: the group whose rewards are compared (at least 2)."""
    learning_rate: float = 1e-6
    """AdamW learning rate, constant (about 1e-5 suits ``lora=true``)."""
    beta: float = 0.0
    """KL penalty towards the starting model; 0 (TRL's default) keeps no reference model."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (replaces the agent config's); TRL scores the tokens
    with the same temperature, so it must be above 0."""
    lora: bool = False
    """Train LoRA adapters (peft) instead of every weight; merged into the model before saving."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by lora_alpha / lora_r)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, slower (large models)."""
    use_vllm: bool = False
    """Sample with TRL's vLLM engine (CUDA GPU only; TRL syncs the weights into it each step)."""
    vllm_mode: str = "colocate"
    """TRL's vLLM mode: ``colocate`` (in this process) or ``server`` (``trl vllm-serve``)."""
    logging_steps: int = 1
    """Report metrics every this many steps."""
    seed: int = 0
    """Seeds task order, sampling and training."""

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "lora_r", "lora_alpha", "logging_steps"):
            if getattr(self, name) < 1:
                raise ScError(f"grpo setting {name} must be at least 1, got {getattr(self, name)}")
        if self.num_generations < 2:
            raise ScError("grpo setting num_generations must be at least 2 (rewards are compared)")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ScError(f"grpo setting learning_rate must be positive, got {self.learning_rate}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ScError(f"grpo setting temperature must be above 0, got {self.temperature}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise ScError(f"grpo setting beta must be 0 or more, got {self.beta}")
        if self.vllm_mode not in ("colocate", "server"):
            raise ScError(f"grpo setting vllm_mode must be colocate or server: {self.vllm_mode!r}")


def sc_reward(completions: list, sc_reward: list[float], **kwargs: Any) -> list[float]:
    """TRL's reward function: the shaped reward the rollout computed (verifier, then shaper)."""
    return [float(reward) for reward in sc_reward]


def to_trl(samples: list[Sample], filler: int, logprobs: bool) -> dict[str, Any]:
    """The rollout's answer to TRL: token lists per sample, ``env_mask`` (the episode's
    ``completion_mask``) and the rewards as the extra field ``sc_reward``.

    An episode that failed before its first token (a toolset that could not reset) becomes one
    masked ``filler`` token (EOS), so TRL's tensors stay well formed; it still counts in its
    group's baseline with its zero reward. ``logprobs``: the sampler's per-token log-probs, only
    where they are real (vLLM, for TRL's importance-sampling correction); None otherwise, see
    :meth:`Rollout.__call__`.
    """
    out: dict[str, list] = {k: [] for k in ("prompt_ids", "completion_ids", "env_mask", "logprobs")}
    for sample in samples:
        episode = sample.episode
        ids, mask = list(episode.completion_ids), list(episode.completion_mask)
        lps = list(episode.logprobs) if len(episode.logprobs) == len(ids) else [0.0] * len(ids)
        if not ids or len(mask) != len(ids):
            ids, mask, lps = [filler], [0], [0.0]
        out["prompt_ids"].append(list(episode.prompt_ids) or [filler])
        out["completion_ids"].append(ids)
        out["env_mask"].append(mask)
        out["logprobs"].append(lps)
    return out | {
        "logprobs": out["logprobs"] if logprobs else None,
        "sc_reward": [sample.reward for sample in samples],
    }


class Rollout:
    """TRL's ``rollout_func``: runs sc episodes for a batch of prompts on the current weights."""

    def __init__(self, job: TrainJob, tokenizer: Any, settings: GRPOSettings):
        self.job, self.tokenizer, self.settings = job, tokenizer, settings
        self.agent_config = dataclasses.replace(job.agent, temperature=settings.temperature)

    def __call__(self, prompts: list[list[dict]], trainer: Any) -> dict[str, Any]:
        from sc_core.agent import Agent
        from sc_core.default_plugins.transformers_backend import TransformersBackend
        from sc_core.train import rollouts

        # Each prompt is already one of num_generations copies, so each is one episode (k=1).
        tasks = [self.job.tasks[prompt[-1]["sc_task"]] for prompt in prompts]
        model = trainer.accelerator.unwrap_model(trainer.model)
        backend: ModelBackend = TransformersBackend.from_loaded(model, self.tokenizer, len(prompts))
        if self.settings.use_vllm:
            stop = backend.stop_ids()
            backend = TRLvLLMBackend(trainer.vllm_generation, self.tokenizer, stop)
        agent = Agent(backend, self.agent_config)
        with _eval_mode(model):
            samples = rollouts(tasks, agent, self.job.pool, 1, self.job.shaper, self.job.tools)
        self.job.on_samples(distributed.gather(samples))  # each process rolled out its share
        # Log-probs: with transformers the episodes are sampled by the very weights TRL then
        # scores, within the same optimizer step (one generation per step, one iteration), so TRL's
        # on-policy default (old log-probs = the current ones, detached) is exact and sampler
        # log-probs would be unused; the agent does not ask for them (its logprobs are 0.0).
        # With more iterations per generation TRL recomputes the old ones itself. vLLM samples
        # from a copy in another numeric path, so there its log-probs go to TRL's correction.
        return to_trl(samples, self.tokenizer.eos_token_id, logprobs=self.settings.use_vllm)


class TRLvLLMBackend(ModelBackend):
    """sc's model interface over TRL's vLLM engine (``use_vllm``), which TRL keeps in sync with
    the trained weights; its token ids end with the stop token when vLLM stopped there. One
    process only: in server mode each call is a collective. (Not run in CI: no GPU there.)"""

    name = "trl-vllm"

    def __init__(self, engine: Any, tokenizer: Any, stop: set[int]):
        super().__init__("trl-vllm")
        self.engine, self._tokenizer, self.stop = engine, tokenizer, stop

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        self.engine.max_completion_length = params.max_new_tokens  # per turn, read per call
        _, completions, logprobs, _ = self.engine.generate(prompts, None, 1)
        results = []
        for i, ids in enumerate(completions):
            ids = list(ids)
            row = [token[0] for token in logprobs[i]] if logprobs is not None else None
            finish = "stop" if ids and ids[-1] in self.stop else "length"
            text = self._tokenizer.decode(ids, skip_special_tokens=True)
            results.append(Generation(ids, text, row, finish))
        return results


@contextlib.contextmanager
def _eval_mode(model: Any) -> Iterator[None]:
    """Sample in eval mode (no dropout, the KV cache on under gradient checkpointing)."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class GRPOBackend(RLBackend):
    """Group-relative policy optimisation on multi-turn tool episodes, through TRL."""

    name = "grpo"
    Config = GRPOSettings

    def train(self, job: TrainJob) -> Path:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from sc_core.model_sources import load_error
        from sc_core.models import resolve_model

        settings: GRPOSettings = self.config
        cuda = torch.cuda.is_available()
        distributed.name_deepspeed_accelerator(cuda)
        if settings.use_vllm and not cuda:
            raise ScError("grpo: use_vllm=true needs a CUDA GPU (vLLM does not run on CPU)")
        if settings.use_vllm and importlib.util.find_spec("vllm") is None:
            raise ScError("grpo: use_vllm=true needs vLLM (pip install vllm)")
        if not job.tasks:
            raise ScError("grpo: no tasks to train on")
        job = job.for_this_process()
        path = resolve_model(job.model)
        with tempfile.TemporaryDirectory(prefix="sc-grpo-") as scratch, quiet():
            try:
                tokenizer = AutoTokenizer.from_pretrained(path)
                model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
            except (OSError, ValueError) as error:
                raise ScError(f"grpo: {load_error(job.model, error)}") from None
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            padding_side = tokenizer.padding_side
            trainer = self._trainer(model, tokenizer, job, scratch, cuda)
            trainer.train()
            model = trainer.accelerator.unwrap_model(trainer.model)
            if settings.lora:
                model = model.merge_and_unload()
            if settings.gradient_checkpointing:
                model.gradient_checkpointing_disable()
            model.config.use_cache = True
            tokenizer.padding_side = padding_side
            return save(model, tokenizer, job.out_dir)

    def _trainer(self, model: Any, tokenizer: Any, job: TrainJob, scratch: str, cuda: bool) -> Any:
        import torch
        from datasets import Dataset
        from transformers import PrinterCallback, TrainerCallback
        from trl import GRPOConfig, GRPOTrainer

        settings: GRPOSettings = self.config

        class Metrics(TrainerCallback):
            """Each step's figures (TRL's ``reward``, ``loss``, ...) to ``job.on_metrics``."""

            def on_log(self, args, state, control, logs=None, **kwargs):
                row = {
                    key: value
                    for key, value in (logs or {}).items()
                    if isinstance(value, (int, float)) and not isinstance(value, bool)
                }
                if "reward" in row:  # a training step, not the end-of-run summary
                    job.on_metrics({"step": state.global_step} | row)

        peft_config = None
        if settings.lora:
            from peft import LoraConfig

            peft_config = LoraConfig(
                r=settings.lora_r,
                lora_alpha=settings.lora_alpha,
                lora_dropout=0.0,
                target_modules="all-linear",
                task_type="CAUSAL_LM",
            )
        # The sampler drops an incomplete batch of tasks, so a step never asks for more than exist.
        tasks_per_step = min(settings.batch_size, len(job.tasks))
        # batch_size is global: under accelerate launch each process rolls out and trains on
        # its share of the step's episodes, and TRL gathers the rewards to compare each group.
        episodes = distributed.per_process(
            tasks_per_step * settings.num_generations, "grpo batch_size × num_generations"
        )
        args = GRPOConfig(
            output_dir=scratch,
            max_steps=settings.steps,
            per_device_train_batch_size=episodes,
            num_generations=settings.num_generations,
            learning_rate=settings.learning_rate,
            lr_scheduler_type="constant",
            beta=settings.beta,
            temperature=settings.temperature,
            top_p=job.agent.top_p,
            # Not a cut in the rollout_func path (the agent's limits are); the length scale of the
            # dr_grpo loss and vLLM's default.
            max_completion_length=job.agent.max_total_tokens,
            use_vllm=settings.use_vllm,
            vllm_mode=settings.vllm_mode,
            gradient_checkpointing=settings.gradient_checkpointing,
            logging_steps=settings.logging_steps,
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            seed=settings.seed,
            use_cpu=not cuda,
            ddp_find_unused_parameters=False,  # every weight is used: no extra pass
            bf16=cuda and torch.cuda.is_bf16_supported(),
            dataloader_pin_memory=cuda,
        )
        rows = [
            {"prompt": [{"role": "user", "content": task.instruction, "sc_task": index}]}
            for index, task in enumerate(job.tasks)
        ]
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[sc_reward],
            args=args,
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
            rollout_func=Rollout(job, tokenizer, settings),
            callbacks=[Metrics()],
        )
        trainer.remove_callback(PrinterCallback)  # it prints every log line to stdout
        return trainer
