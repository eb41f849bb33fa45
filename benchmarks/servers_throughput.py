"""Agent episodes per second from one ``vllm serve`` against two, on the same work, in one run.

    .venv/bin/python benchmarks/servers_throughput.py [--episodes 32] [--max-turns 3]
        [--max-new-tokens 64]

The same calculator episodes (``evals/calculator.jsonl``, SmolLM2, temperature 0.7) run through
the ``openai`` backend three times: against one server on half the CPUs, against two servers
on half the CPUs each (``VLLM_CPU_OMP_THREADS_BIND``: what a second machine adds), and against
one server on every CPU (the same machine, not split). On GPUs each server would have its own
device. Each server is started for its measurement, warmed up with one request, and stopped
after it. Printed: episodes/s and generated tokens/s of each, the ratios, how many requests
each server answered, and the machine's load average before and after (other work on a shared
machine skews every figure).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from sc_core.agent import Agent, AgentConfig, EpisodeSpec
from sc_core.distributed import free_port
from sc_core.models import SamplingParams, load_model, resolve_model
from sc_core.task import read_tasks
from sc_core.tools import load_toolset

EVALS = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"


def start(cpus: list[int], log: Path) -> tuple[str, subprocess.Popen]:
    """A ``vllm serve`` of SmolLM2 whose worker runs on ``cpus``; returns its URL and process."""
    port = free_port()
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", resolve_model("smollm2"), "--served-model-name", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--max-model-len", "4096",
        "--enforce-eager", "--dtype", "float32",
    ]  # fmt: skip
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CPU_OMP_THREADS_BIND": ",".join(map(str, cpus)),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return f"http://127.0.0.1:{port}/v1", process


def wait_healthy(servers: list[tuple[str, subprocess.Popen]], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    for url, process in servers:
        while True:
            if process.poll() is not None:
                raise SystemExit(f"vllm serve exited with {process.returncode}")
            try:
                with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"{url} not healthy after {timeout:g}s") from None
                time.sleep(1)


def stop(servers: list[tuple[str, subprocess.Popen]]) -> None:
    for _, process in servers:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
        except ProcessLookupError:
            pass


def measure(cpu_sets: list[list[int]], specs_for, config: AgentConfig, logs: Path) -> dict:
    servers = [start(cpus, logs / f"serve-{i}.log") for i, cpus in enumerate(cpu_sets)]
    try:
        wait_healthy(servers)
        model = load_model("openai:smollm2@" + ",".join(url for url, _ in servers))
        warm = SamplingParams(max_new_tokens=4, temperature=0.0)
        model.generate([[1, 2, 3]] * len(servers), warm)
        model.endpoints.answered.clear()
        specs = specs_for()
        begin = time.perf_counter()
        episodes = Agent(model, config).run(specs)
        seconds = time.perf_counter() - begin
        tokens = sum(sum(episode.completion_mask) for episode in episodes)
        return {
            "episodes": len(episodes),
            "seconds": seconds,
            "tokens": tokens,
            "answered": [model.endpoints.answered[url] for url, _ in servers],
        }
    finally:
        stop(servers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    args = parser.parse_args()
    tasks = [line.task for line in read_tasks(EVALS) if line.task]
    tasks = [tasks[i % len(tasks)] for i in range(args.episodes)]
    tools = load_toolset("calculator")

    def specs_for() -> list[EpisodeSpec]:
        return [EpisodeSpec(t.instruction, tools.create(), t.seed, t.id) for t in tasks]

    config = AgentConfig(
        max_turns=args.max_turns, max_new_tokens=args.max_new_tokens, temperature=0.7
    )
    cpus = sorted(os.sched_getaffinity(0))
    half = max(1, len(cpus) // 2)
    layouts = {
        "1 server, half the CPUs ": [cpus[:half]],
        "2 servers, half each    ": [cpus[:half], cpus[half:] or cpus[:half]],
        "1 server, every CPU     ": [cpus],
    }
    results = {}
    with tempfile.TemporaryDirectory() as logs:
        for label, cpu_sets in layouts.items():
            load = os.getloadavg()[0]
            results[label] = measure(cpu_sets, specs_for, config, Path(logs))
            results[label]["load"] = (load, os.getloadavg()[0])
    print(f"{args.episodes} calculator episodes, SmolLM2, {len(cpus)} CPUs: {cpus}")
    for label, result in results.items():
        rate = result["episodes"] / result["seconds"]
        print(
            f"  {label} {layouts[label]}: {rate:6.3f} episodes/s, "
            f"{result['tokens'] / result['seconds']:6.1f} tok/s, {result['seconds']:6.1f} s, "
            f"requests per server {result['answered']}, "
            f"machine load {result['load'][0]:.1f} -> {result['load'][1]:.1f}"
        )
    rates = [r["episodes"] / r["seconds"] for r in results.values()]
    print(f"  2 servers / 1 server of the same size: {rates[1] / rates[0]:.2f}x episodes/s")
    print(f"  2 servers / 1 server on every CPU:     {rates[1] / rates[2]:.2f}x episodes/s")


if __name__ == "__main__":
    main()
