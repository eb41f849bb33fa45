"""Agent-loop throughput against raw batched generation, on the same prompts, in one run.

    .venv/bin/python benchmarks/rollout_throughput.py [--backends transformers,vllm]
        [--episodes 136] [--max-new-tokens 96] [--max-turns 3]

For each backend the agent loop runs episodes of the calculator evaluation tasks (multi-turn,
tools executed, results rendered back), by default 136, as ``sc eval -k 4`` runs on that set.
Then raw ``generate`` runs, in one batch and with the same sampling, twice: on the episodes'
first-turn prompts, and on every prompt the loop generated from (each turn's whole
conversation so far). Each figure is generated tokens per second (the model's own tokens only)
and starts with the backend's prefix cache empty; the ratios are loop / raw. Target: at least
0.8. Later turns attend over longer conversations, which costs a CPU decode step dearly: the
first ratio includes that, the second compares the same work done in one batch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sc_core.agent import Agent, AgentConfig, Episode, EpisodeSpec
from sc_core.models import ModelBackend, SamplingParams, load_model
from sc_core.task import read_tasks
from sc_core.tools import load_toolset

EVALS = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"


def cold(model: ModelBackend) -> None:
    """Forget cached prefixes, so that each measurement pays for its own prefill."""
    if getattr(model, "llm", None) is not None:  # vllm
        model.llm.reset_prefix_cache()
    if getattr(model, "prefix_cache", None) is not None:  # transformers
        model.prefix_cache.clear()


def turn_prompts(episode: Episode) -> list[list[int]]:
    """The prompt of each generated turn: everything before the turn's first token."""
    mask, ids = episode.completion_mask, episode.completion_ids
    starts = [i for i, m in enumerate(mask) if m and (i == 0 or not mask[i - 1])]
    return [episode.prompt_ids + ids[:start] for start in starts]


def rate(model: ModelBackend, prompts: list[list[int]], params: SamplingParams) -> float:
    cold(model)
    start = time.perf_counter()
    tokens = sum(len(g.token_ids) for g in model.generate(prompts, params))
    return tokens / (time.perf_counter() - start)


def measure(backend: str, episodes: int, max_new_tokens: int, max_turns: int) -> None:
    model = load_model(f"{backend}:smollm2")
    tasks = [item.task for item in read_tasks(EVALS) if item.task]
    tasks = [tasks[i % len(tasks)] for i in range(episodes)]
    tools = load_toolset("calculator")
    config = AgentConfig(max_turns=max_turns, max_new_tokens=max_new_tokens, temperature=0.7)
    agent = Agent(model, config)
    specs = [EpisodeSpec(task.instruction, tools.create(), task.seed, task.id) for task in tasks]
    model.generate([agent.start(specs[0]).episode.prompt_ids], SamplingParams(max_new_tokens=4))

    cold(model)
    start = time.perf_counter()
    done = agent.run(specs)
    loop_seconds = time.perf_counter() - start
    loop_tokens = sum(sum(episode.completion_mask) for episode in done)
    loop_rate = loop_tokens / loop_seconds
    every = [prompt for episode in done for prompt in turn_prompts(episode)]

    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.7)
    first_rate = rate(model, [episode.prompt_ids for episode in done], params)
    every_rate = rate(model, every, params)
    print(f"{backend}: {len(specs)} episodes, {len(every)} turns, {loop_tokens} loop tokens")
    print(f"  agent loop:                          {loop_rate:7.1f} tok/s")
    for label, raw in (("first-turn prompts", first_rate), ("every turn's prompt", every_rate)):
        verdict = "met" if loop_rate >= 0.8 * raw else "MISSED"
        print(
            f"  raw generate, {label + ':':21s} {raw:7.1f} tok/s"
            f"   loop / raw {loop_rate / raw:.2f} (target >= 0.8: {verdict})"
        )
    model.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="transformers,vllm")
    parser.add_argument("--episodes", type=int, default=136)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--max-turns", type=int, default=3)
    args = parser.parse_args()
    for backend in args.backends.split(","):
        measure(backend, args.episodes, args.max_new_tokens, args.max_turns)


if __name__ == "__main__":
    main()
