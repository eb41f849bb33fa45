"""Throughput of the CaT filter (`sc verify`) against spawning a fresh Python per program.

    .venv/bin/python benchmarks/verify_throughput.py [--tasks 300]

Generates distinct calculator tasks (one solution and two failure cases each, so eight sandboxed
programs per task: solve and verify for the solution and each failure, the solution again for
the determinism check, then the verifier on every derived wrong answer in one job), then
measures, in one run:

- ``sc verify`` end to end (the real CLI, start-up included), with the default bwrap sandbox;
- the filter alone (run_filter with a warm pool), bwrap and subprocess sandboxes, and each
  sandbox named by ``--also`` (``--also docker``: a container per worker, needs an engine);
- the naive rate: one fresh ``python -c PROGRAM`` process per program, sequentially and with one
  process per core, and one fresh bwrap sandbox per program.

Target: the filter with full isolation (bwrap) at least 3x the naive per-process rate at the
same parallelism.

    .venv/bin/python benchmarks/verify_throughput.py --ray [ADDRESS] [--tasks 300]

measures instead, in one run on the same tasks: the filter on a warm local bwrap pool, then
on a Ray cluster (``--ray`` alone: a local one started for it, as ``sc verify --ray`` does;
its start-up is timed apart), each node with one bwrap worker per CPU Ray counts there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sc_core.default_plugins.sandboxes import PYTHON, _bwrap_path, _system_binds
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import parse_line, write_jsonl
from sc_core.tools import load_toolset
from sc_core.verify import run_filter

SC = Path(sys.executable).with_name("sc")
WORKERS = os.cpu_count() or 1


def make_tasks(count: int) -> list[dict]:
    tasks = []
    for i in range(count):
        a, b, c = 3 + i, 7 + 2 * i, i % 9 + 2
        tasks.append(
            {
                "id": f"bench-{i}",
                "toolset": "calculator",
                "seed": i,
                "instruction": f"What is ({a} + {b}) * {c}?",
                "verify": f"def verify(state, answer):\n    return answer == {(a + b) * c}\n",
                "solution": (
                    "def solve(tools):\n"
                    f"    total = tools.add(a={a}, b={b})\n"
                    f"    return tools.multiply(a=total, b={c})\n"
                ),
                "failures": [
                    f"def solve(tools):\n    return tools.add(a={a}, b={b})\n",
                    f"def solve(tools):\n    return tools.multiply(a={a}, b={b})\n",
                ],
            }
        )
    return tasks


def programs_per_task(task: dict) -> int:
    return 4 + 2 * len(task["failures"])


def naive_program(task: dict) -> str:
    """A stand-alone script for one program, with the tools it calls defined in-process."""
    return (
        "add = lambda a, b: a + b\nmultiply = lambda a, b: a * b\n"
        "class tools:\n    add = staticmethod(add)\n    multiply = staticmethod(multiply)\n"
        + task["solution"]
        + "print(solve(tools))\n"
    )


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds else float("inf")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def naive_rate(scripts: list[list[str]], parallel: int) -> float:
    def spawn(argv: list[str]) -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)

    with ThreadPoolExecutor(parallel) as executor:
        seconds = timed(lambda: list(executor.map(spawn, scripts)))
    return rate(len(scripts), seconds)


def filter_rate(tasks: list[dict], sandbox_name: str) -> tuple[float, float, int]:
    items = [parse_line(n, json.dumps(task)) for n, task in enumerate(tasks, 1)]
    tools = load_toolset("calculator")
    with SandboxPool(get_sandbox(sandbox_name), Limits(), WORKERS) as pool:
        report = None

        def run() -> None:
            nonlocal report
            report = run_filter(items, pool, tools)

        seconds = timed(run)
    programs = sum(programs_per_task(task) for task in tasks)
    return rate(len(tasks), seconds), rate(programs, seconds), len(report.kept)


def ray_comparison(tasks: list[dict], address: str) -> None:
    """Local pool against a Ray cluster, same tasks, same verdicts."""
    from sc_core.cluster import RayPool

    items = [parse_line(n, json.dumps(task)) for n, task in enumerate(tasks, 1)]
    tools = load_toolset("calculator")
    programs = sum(programs_per_task(task) for task in tasks)
    local_tasks, local_programs, kept = filter_rate(tasks, "bwrap")
    start = time.perf_counter()
    with RayPool("bwrap", Limits(), WORKERS, address) as pool:
        started = time.perf_counter() - start
        nodes, workers = len(pool.nodes), sum(node.slots // 2 for node in pool.nodes)
        run_filter(items[:WORKERS], pool, tools)  # each node opens its job and warms a worker
        report = None

        def run() -> None:
            nonlocal report
            report = run_filter(items, pool, tools)

        seconds = timed(run)
    assert len(report.kept) == kept, (len(report.kept), kept)
    again_tasks, again_programs, _ = filter_rate(tasks, "bwrap")  # the load may have changed
    print(f"tasks: {len(tasks)} ({programs} sandboxed programs), cores here: {WORKERS}")
    print(f"Ray cluster {address}: {nodes} node(s), {workers} sandbox workers")
    print(f"Ray start-up and actors (not in the rates): {started:.1f}s")
    ray_tasks, ray_programs = rate(len(tasks), seconds), rate(programs, seconds)
    show(f"filter, warm local bwrap pool ({WORKERS} workers)", local_tasks, local_programs)
    show("filter, Ray cluster (bwrap on each node)", ray_tasks, ray_programs)
    show("filter, warm local bwrap pool, again after Ray", again_tasks, again_programs)
    local = (local_programs + again_programs) / 2
    print(f"ratio Ray / local pool (mean of its two runs): {ray_programs / local:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--naive-samples", type=int, default=60)
    parser.add_argument(
        "--also", action="append", default=[], metavar="SANDBOX", help="e.g. docker"
    )
    parser.add_argument(
        "--ray", nargs="?", const="local", metavar="ADDRESS",
        help="Compare the local pool with a Ray cluster (alone: one started here) instead.",
    )  # fmt: skip
    args = parser.parse_args()
    tasks = make_tasks(args.tasks)
    if args.ray:
        ray_comparison(tasks, args.ray)
        return
    programs = sum(programs_per_task(task) for task in tasks)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tasks.jsonl"
        write_jsonl(path, tasks)
        start = time.perf_counter()
        result = subprocess.run(
            [str(SC), "verify", str(path), "--json"], check=True, capture_output=True, text=True
        )
        cli_seconds = time.perf_counter() - start
    cli = json.loads(result.stdout)
    assert cli["kept"] == len(tasks), cli["stages"]

    bwrap_tasks, bwrap_programs, kept = filter_rate(tasks, "bwrap")
    sub_tasks, sub_programs, _ = filter_rate(tasks, "subprocess")
    also = {name: filter_rate(tasks, name) for name in args.also}

    sample = tasks[: args.naive_samples]
    plain = [[sys.executable, "-c", naive_program(task)] for task in sample]
    isolated = [
        [*_bwrap_prefix(), PYTHON, "-I", "-S", "-c", naive_program(task)] for task in sample
    ]
    naive_seq = naive_rate(plain, 1)
    naive_par = naive_rate(plain, WORKERS)
    naive_bwrap = naive_rate(isolated, WORKERS)

    print(f"tasks: {len(tasks)} ({programs} sandboxed programs), cores: {WORKERS}, kept: {kept}")
    cli_programs = rate(programs, cli_seconds)
    show("sc verify CLI, bwrap (start-up included)", rate(len(tasks), cli_seconds), cli_programs)
    show("filter, warm bwrap pool", bwrap_tasks, bwrap_programs)
    show("filter, warm subprocess pool", sub_tasks, sub_programs)
    for name, (also_tasks, also_programs, _) in also.items():
        show(f"filter, warm {name} pool", also_tasks, also_programs)
    show("naive: fresh python per program, 1 at a time", None, naive_seq)
    show(f"naive: fresh python per program, {WORKERS} at a time", None, naive_par)
    show(f"naive: fresh bwrap + python -I -S per program, {WORKERS} at a time", None, naive_bwrap)
    ratio = bwrap_programs / naive_par
    verdict = "met" if ratio >= 3 else "MISSED"
    print(f"ratio bwrap pool / naive ({WORKERS} at a time): {ratio:.1f}x (target >= 3x: {verdict})")
    print(f"ratio sc verify CLI / naive ({WORKERS} at a time): {cli_programs / naive_par:.1f}x")
    print(f"ratio bwrap pool / fresh bwrap per program: {bwrap_programs / naive_bwrap:.1f}x")
    for name, (_, also_programs, _) in also.items():
        print(f"ratio {name} pool / bwrap pool: {also_programs / bwrap_programs:.2f}x")


def show(label: str, tasks_per_s: float | None, programs_per_s: float) -> None:
    tasks_text = f"{tasks_per_s:7.1f} tasks/s" if tasks_per_s is not None else " " * 15
    print(f"{label:<62} {tasks_text} {programs_per_s:7.1f} programs/s")


def _bwrap_prefix() -> list[str]:
    return [
        _bwrap_path(), "--unshare-all", "--die-with-parent", "--clearenv", *_system_binds(),
        "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
    ]  # fmt: skip


if __name__ == "__main__":
    main()
