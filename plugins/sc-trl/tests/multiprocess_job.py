"""One training run for test_multiprocess.py, started as ``python multiprocess_job.py`` (one
process) or under ``accelerate launch`` (several). Arguments: backend (rft|grpo), model dir,
out dir, record dir.

Each process records in ``record-RANK.json`` what it was asked to write: metrics rows, samples
and checkpoint saves, so that the test can check that rank 0 alone writes. ``grpo`` samples
from a replay model: the i-th copy of a prompt in a step gets the same fixed completion in
every run, whichever process rolls it out, so 1 and 2 processes learn from the same episodes.
(Real sampling draws from each process's random stream, and so differs between the two.)
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path

import transformers
from sc_trl.grpo import GRPOBackend, GRPOSettings
from sc_trl.rft import RFTBackend, RFTConfig

from sc_core.agent import AgentConfig
from sc_core.default_plugins.transformers_backend import TransformersBackend
from sc_core.models import Generation, ModelBackend, SamplingParams
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import read_tasks
from sc_core.tools import Tool, Toolset, ToolsetSpec
from sc_core.train import TrainJob

EVALS = Path(__file__).resolve().parents[3] / "evals"
AGENT = AgentConfig(max_turns=1, max_new_tokens=6, system_prompt="Solve the task.")


class Replay(ModelBackend):
    """The n-th request of a prompt gets ``n + 1`` copies of one word and the end of turn."""

    def __init__(self, tokenizer):
        super().__init__("replay")
        self._tokenizer, self.seen = tokenizer, Counter()

    @property
    def tokenizer(self):
        return self._tokenizer

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        out = []
        for prompt in prompts:
            n = self.seen[tuple(prompt)]
            self.seen[tuple(prompt)] += 1
            ids = self._tokenizer.encode(" yes" * (n + 1), add_special_tokens=False)
            ids.append(self._tokenizer.eos_token_id)
            out.append(Generation(ids, self._tokenizer.decode(ids), None, "stop"))
        return out


def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


def main(backend: str, model: str, out: str, record_dir: str) -> None:
    record: dict = {"metrics": 0, "samples": [], "saves": 0}
    tasks = [line.task for line in read_tasks(EVALS / "calculator.jsonl") if line.task][:4]
    tools = ToolsetSpec("add", lambda: Toolset([Tool.from_function(add)]))

    def longer_is_better(score: float, episode: dict) -> float:
        return len(episode["completion_ids"]) / 10

    if backend == "grpo":
        TransformersBackend.from_loaded = classmethod(lambda cls, model, tok, size=16: Replay(tok))
        trainer = GRPOBackend(
            GRPOSettings(steps=2, batch_size=2, num_generations=2, learning_rate=1e-3)
        )
    else:
        trainer = RFTBackend(
            RFTConfig(
                k=1,
                batch_size=2,
                epochs=1,
                temperature=0,
                min_reward=0,
                learning_rate=1e-3,
                demonstrations=False,
                lora=False,
            )
        )
    original = transformers.PreTrainedModel.save_pretrained

    def counted(self, *args, **kwargs):
        record["saves"] += 1
        return original(self, *args, **kwargs)

    transformers.PreTrainedModel.save_pretrained = counted
    with SandboxPool(get_sandbox(None), Limits(wall_s=60), 1) as pool:
        job = TrainJob(tasks, model, Path(out), pool, longer_is_better, tools, AGENT)
        job.on_metrics = lambda row: record.__setitem__("metrics", record["metrics"] + 1)
        job.on_samples = lambda batch: record["samples"].append(len(batch))
        trainer.train(job)
    rank = os.environ.get("RANK", "0")
    Path(record_dir, f"record-{rank}.json").write_text(json.dumps(record))


if __name__ == "__main__":
    main(*sys.argv[1:])
