"""The ``sc`` command line. Plugins add commands through the ``register_commands`` hook."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from .agent import Agent, AgentConfig
from .challenge import ChallengeConfig
from .errors import ScError
from .evaluate import evaluate
from .models import ALIASES, DEFAULT_MODEL, embedded_gguf, load_model
from .plugins import call_each, plugin_info, registry
from .sandbox import Limits, SandboxPool, get_sandbox
from .task import CodeAsTask, read_tasks, write_jsonl
from .tools import load_toolset
from .verify import FilterReport, run_filter

console = Console(stderr=True)
stdout = Console(highlight=False)


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


@click.group()
@click.version_option(package_name="sc-core")
def cli() -> None:
    """sc: train tool-using agents on tasks they write for themselves."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins(as_json: bool) -> None:
    """List every plugin, built-in and installed, with the hooks it implements."""
    rows = plugin_info()
    if as_json:
        emit_json(rows)
        return
    table = Table(Column("plugin", no_wrap=True), "version", "hooks")
    for row in rows:
        hooks = ", ".join(hook.removeprefix("register_") for hook in row["hooks"])
        name = row["name"]
        if row["builtin"]:
            name = name.removeprefix("sc_core.default_plugins.") + " (built-in)"
        table.add_row(name, row["version"] or "", hooks or f"[red]failed: {row['error']}[/red]")
    stdout.print(table)


@cli.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the tools as JSON function specs.")
def tools(spec: str, as_json: bool) -> None:
    """Show the tools of toolset SPEC: a name, a module, a .py file, or scheme:spec."""
    toolset = load_toolset(spec).create()
    try:
        if as_json:
            emit_json([tool.spec() for tool in toolset.tools.values()])
            return
        table = Table("tool", "parameters", "description")
        for tool in toolset.tools.values():
            required = set(tool.parameters.get("required", []))
            params = ", ".join(
                f"{name}{'' if name in required else '?'}: {prop.get('type', 'any')}"
                for name, prop in tool.parameters.get("properties", {}).items()
            )
            table.add_row(tool.name, params, tool.description)
        stdout.print(table)
    finally:
        toolset.close()


def progress_bar(label: str) -> Progress:
    return Progress(
        TextColumn(label),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=console,
        transient=True,
    )


def print_filter_summary(report: FilterReport) -> None:
    total = len(report.verdicts)
    table = Table(
        "stage", "survived", "of all", title=f"CaT filter: {len(report.kept)} of {total} kept"
    )
    for stage, count in report.stages().items():
        table.add_row(stage, str(count), f"{count / total:.1%}" if total else "-")
    stdout.print(table)
    rejected = [verdict for verdict in report.verdicts if not verdict.kept]
    for verdict in rejected[:20]:
        stdout.print(
            f"[red]rejected[/red] {verdict.id} at {verdict.stage}: {verdict.reason}", soft_wrap=True
        )
    if len(rejected) > 20:
        stdout.print(f"... and {len(rejected) - 20} more (see --rejected or --json)")


def sandbox_options(command):
    """--sandbox, --workers and --timeout, shared by every command that runs model code."""
    command = click.option(
        "--timeout",
        type=float,
        default=Limits.wall_s,
        show_default=True,
        help="Wall-clock seconds per program.",
    )(command)
    command = click.option(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        show_default=True,
        help="Sandbox workers.",
    )(command)
    return click.option(
        "--sandbox", "sandbox_name", help="Sandbox to run code in (default: bwrap on Linux)."
    )(command)  # fmt: skip


def open_pool(sandbox_name: str | None, workers: int, timeout: float) -> SandboxPool:
    sandbox = get_sandbox(sandbox_name)
    if sandbox.weaker:
        console.print(f"[yellow]warning:[/yellow] {sandbox.weaker}")
    return SandboxPool(sandbox, Limits(wall_s=timeout), max(1, workers))


def load_task_file(path: str) -> list[CodeAsTask]:
    """Tasks that must all be valid (examples, evaluation sets): a bad line is an error."""
    tasks = []
    for item in read_tasks(path):
        if item.task is None:
            raise ScError(f"{path}, line {item.line}: {item.error}")
        tasks.append(item.task)
    if not tasks:
        raise ScError(f"{path} holds no tasks")
    return tasks


@cli.command()
@click.argument("tasks", type=click.Path(dir_okay=False))
@click.option("--tools", "tools_spec", help="Toolset spec for every task (default: each task's).")
@click.option("--json", "as_json", is_flag=True, help="Print {total, kept, stages, tasks} as JSON.")
@click.option("--kept", "kept_path", type=click.Path(dir_okay=False), help="Write kept tasks here.")
@click.option(
    "--rejected",
    "rejected_path",
    type=click.Path(dir_okay=False),
    help="Write rejected lines, with reasons, here.",
)
@sandbox_options
def verify(
    tasks, tools_spec, as_json, kept_path, rejected_path, sandbox_name, workers, timeout
) -> None:
    """Run the CaT filter on TASKS (JSONL) and report what survives each stage."""
    items = list(read_tasks(tasks))
    tools = load_toolset(tools_spec) if tools_spec else None
    with progress_bar("verifying") as progress, open_pool(sandbox_name, workers, timeout) as pool:
        bar = progress.add_task("verify", total=len(items), status="")
        counts = {"kept": 0}

        def advance(verdict):
            counts["kept"] += verdict.kept
            progress.update(bar, advance=1, status=f"{counts['kept']} pass so far")

        report = run_filter(items, pool, tools, on_done=advance)
    if kept_path:
        write_jsonl(kept_path, [v.item.task.to_dict() for v in report.kept])
    if rejected_path:
        write_jsonl(rejected_path, [rejected_row(v) for v in report.verdicts if not v.kept])
    if as_json:
        emit_json(report.to_dict())
    else:
        print_filter_summary(report)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print backends and aliases as JSON.")
def models(as_json: bool) -> None:
    """List the inference backends and the model aliases."""
    backends = registry("register_models")
    gguf = embedded_gguf()
    aliases = {
        alias: f"{hub_id} (embedded: {gguf})" if gguf else hub_id
        for alias, hub_id in ALIASES.items()
    }
    if as_json:
        emit_json({"backends": sorted(backends), "aliases": aliases, "default": DEFAULT_MODEL})
        return
    table = Table("backend", "description")
    for name, cls in sorted(backends.items()):
        table.add_row(name, (cls.__doc__ or "").strip().splitlines()[0])
    stdout.print(table)
    for alias, target in aliases.items():
        stdout.print(f"alias {alias} -> {target}", soft_wrap=True)
    stdout.print(
        f"default model: {DEFAULT_MODEL}; a spec is [backend:]model, e.g. vllm:smollm2",
        markup=False,
    )


@cli.command()
@click.option("--tools", "tools_spec", required=True, help="The toolset to write tasks for.")
@click.option("-n", "attempts", type=int, default=20, show_default=True, help="Attempts.")
@click.option("--model", help="Model spec (default: the embedded SmolLM2-135M-Instruct).")
@click.option("--challenger-model", help="A different model to write the tasks (distillation).")
@click.option("--strategy", default="explore", show_default=True, help="Challenger strategy.")
@click.option("--examples", type=click.Path(dir_okay=False), help="Example tasks for seeded.")
@click.option("--out", default="tasks.jsonl", show_default=True, help="Kept tasks go here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first attempt.")
@click.option(
    "--constrained", is_flag=True, help="Grammar-constrained decoding of the task (vllm backends)."
)
@click.option("--json", "as_json", is_flag=True, help="Print {attempts, kept, stages} as JSON.")
@sandbox_options
def challenge(
    tools_spec, attempts, model, challenger_model, strategy, examples, out, seed, constrained,
    as_json, sandbox_name, workers, timeout,
) -> None:  # fmt: skip
    """Let the model explore a toolset and write Code-as-Tasks; keep those the filter passes."""
    tools = load_toolset(tools_spec)
    strategies = registry("register_challengers")
    if strategy not in strategies:
        raise ScError(f"unknown strategy {strategy!r}; available: {', '.join(sorted(strategies))}")
    config = ChallengeConfig(
        examples=tuple(load_task_file(examples)) if examples else (), constrained=constrained
    )
    writer = load_model(challenger_model or model)
    challenger = strategies[strategy](writer, config)
    seeds = list(range(seed, seed + attempts))
    with progress_bar(f"challenging ({strategy})") as progress:
        bar = progress.add_task("challenge", total=attempts, status="")
        lines = challenger.candidates(
            tools, seeds, on_step=lambda done: progress.update(bar, completed=done)
        )
    with progress_bar("verifying") as progress, open_pool(sandbox_name, workers, timeout) as pool:
        bar = progress.add_task("verify", total=len(lines), status="")
        report = run_filter(lines, pool, tools, on_done=lambda _: progress.advance(bar))
    write_jsonl(out, [v.item.task.to_dict() for v in report.kept])
    rejected = str(Path(out).with_suffix("")) + ".rejected.jsonl"
    write_jsonl(rejected, [rejected_row(v) for v in report.verdicts if not v.kept])
    result = {"attempts": attempts, "kept": len(report.kept), "stages": report.stages()}
    if as_json:
        emit_json(result)
        return
    print_filter_summary(report)
    stdout.print(f"kept tasks: {out}; rejected, with reasons: {rejected}", soft_wrap=True)


@cli.command(name="eval")
@click.option("--tasks", "tasks_path", required=True, type=click.Path(dir_okay=False))
@click.option("--tools", "tools_spec", help="Toolset spec for every task (default: each task's).")
@click.option("--model", help="Model spec (default: the embedded SmolLM2-135M-Instruct).")
@click.option("-k", "k", type=int, default=1, show_default=True, help="Episodes per task.")
@click.option("--max-turns", type=int, default=AgentConfig.max_turns, show_default=True)
@click.option("--temperature", type=float, default=AgentConfig.temperature, show_default=True)
@click.option(
    "--out", help="Folder for trajectories.jsonl and results.json (default: runs/eval-TIME)."
)
@click.option("--json", "as_json", is_flag=True, help="Print {pass_at_1, pass_at_k, k, tasks}.")
@sandbox_options
def eval_command(
    tasks_path, tools_spec, model, k, max_turns, temperature, out, as_json,
    sandbox_name, workers, timeout,
) -> None:  # fmt: skip
    """Solve each task k times in multi-turn tool-use episodes; report pass@1 and pass@k."""
    tasks = load_task_file(tasks_path)
    tools = load_toolset(tools_spec) if tools_spec else None
    agent = Agent(load_model(model), AgentConfig(max_turns=max_turns, temperature=temperature))
    out_dir = Path(out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    with open_pool(sandbox_name, workers, timeout) as pool, progress_bar("solving") as progress:
        bar = progress.add_task("eval", total=len(tasks) * k, status="")
        report = evaluate(
            tasks,
            agent,
            pool,
            k,
            tools,
            on_step=lambda done: progress.update(bar, completed=done),
        )
    result = report.to_dict()
    write_jsonl(out_dir / "trajectories.jsonl", [item.to_dict() for item in report.scored])
    write_jsonl(out_dir / "results.json", [result])
    if as_json:
        emit_json(result)
        return
    table = Table("task", "passed", "finish", title=f"{len(tasks)} tasks, k={k}")
    for row in result["tasks"]:
        table.add_row(row["id"], f"{row['passed']}/{row['n']}", ", ".join(row["finish"]))
    stdout.print(table)
    stdout.print(f"pass@1 {result['pass_at_1']:.3f}   pass@{k} {result['pass_at_k']:.3f}")
    stdout.print(f"trajectories: {out_dir / 'trajectories.jsonl'}", soft_wrap=True)


def rejected_row(verdict) -> dict[str, Any]:
    """A rejected line as saved: the task (or the raw line when it did not parse) and why."""
    item = verdict.item
    row = item.task.to_dict() if item.task else {"line": item.line, "raw": item.raw}
    row["rejection"] = {"stage": verdict.stage, "reason": verdict.reason}
    return row


def main() -> None:
    """Entry point: plugin commands, then the CLI; errors as one line, never a traceback."""
    call_each("register_commands", lambda plugin: {"cli": cli})
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except ScError as error:
        console.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as error:
        if os.environ.get("SC_DEBUG"):
            raise
        console.print(
            f"[red]internal error:[/red] {type(error).__name__}: {error} "
            "(set SC_DEBUG=1 for the traceback)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(2)


if __name__ == "__main__":  # pragma: no cover
    main()
