"""Agent-loop throughput against raw batched generation, on the same prompts, in one run.

    .venv/bin/python benchmarks/rollout_throughput.py [--backends transformers,vllm] [--episodes 136]

For each backend: the agent loop runs episodes of the calculator evaluation tasks (multi-turn,
tools executed, results rendered back), by default 136 as ``sc eval -k 4`` runs on that set;
then raw ``generate`` runs on the same first-turn prompts with the same sampling. Both report
generated tokens per second (the model's own tokens only); the ratio is loop / raw. Target: at
least 0.8. With few episodes the loop's later turns run in a nearly empty batch, so the ratio
falls (see ``--episodes 16``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sc_core.agent import Agent, AgentConfig, EpisodeSpec
from sc_core.models import SamplingParams, load_model
from sc_core.task import read_tasks
from sc_core.tools import load_toolset

EVALS = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"


def measure(backend: str, episodes: int, max_new_tokens: int, max_turns: int) -> None:
    model = load_model(f"{backend}:smollm2")
    tasks = [item.task for item in read_tasks(EVALS) if item.task]
    tasks = [tasks[i % len(tasks)] for i in range(episodes)]
    tools = load_toolset("calculator")
    config = AgentConfig(max_turns=max_turns, max_new_tokens=max_new_tokens, temperature=0.7)
    agent = Agent(model, config)
    specs = [EpisodeSpec(task.instruction, tools.create(), task.seed, task.id) for task in tasks]
    model.generate([agent.start(specs[0]).episode.prompt_ids], SamplingParams(max_new_tokens=4))

    start = time.perf_counter()
    done = agent.run(specs)
    loop_seconds = time.perf_counter() - start
    loop_tokens = sum(sum(episode.completion_mask) for episode in done)
    turns = sum(episode.turns for episode in done)

    prompts = [agent.start(spec).episode.prompt_ids for spec in specs]
    params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.7)
    start = time.perf_counter()
    raw = model.generate(prompts, params)
    raw_seconds = time.perf_counter() - start
    raw_tokens = sum(len(generation.token_ids) for generation in raw)

    loop_rate, raw_rate = loop_tokens / loop_seconds, raw_tokens / raw_seconds
    print(f"{backend}: {len(specs)} episodes, {turns} turns")
    print(
        f"  agent loop: {loop_tokens:6d} tokens in {loop_seconds:7.1f} s = {loop_rate:7.1f} tok/s"
    )
    print(f"  raw generate: {raw_tokens:6d} tokens in {raw_seconds:7.1f} s = {raw_rate:7.1f} tok/s")
    verdict = "met" if loop_rate >= 0.8 * raw_rate else "MISSED"
    print(f"  ratio loop / raw: {loop_rate / raw_rate:.2f} (target >= 0.8: {verdict})")
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
