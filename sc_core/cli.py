"""The ``sc`` command line. Plugins add commands through the ``register_commands`` hook."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from . import api, distributed, diversity
from .agent import AgentConfig
from .challenge import ChallengeConfig
from .errors import ScError
from .model_sources import model_sources
from .models import default_challenger, default_model
from .plugins import call_each, plugin_info, registry
from .progress import progress_for
from .report import summary_rows, write_report
from .run import Events, Run, RunConfig
from .sandbox import Limits, SandboxPool, get_sandbox
from .task import CodeAsTask, read_tasks, write_json, write_jsonl
from .toolcalls import ANSWER_PROTOCOLS
from .tools import Toolset, load_toolset
from .train import parse_options
from .verify import FilterReport, Verdict, run_filter

console = Console(stderr=True)
stdout = Console(highlight=False)
MODEL_DEFAULT = "default: qwen-coder-0.5b where installed, else smollm2; see sc models"
STRATEGY_DEFAULT = "default: seeded where there are example tasks, else explore"


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2))


class ListedOption(click.Option):
    """An option that takes a name plugins register: its help ends with the registered names.

    They are looked up when the help is shown, not when this module is imported, because
    plugins load after the CLI is built (a plugin may add commands to it).
    """

    def __init__(self, *decls: Any, listing: Callable[[], str], **kwargs: Any) -> None:
        self.listing = listing
        super().__init__(*decls, **kwargs)

    @property
    def help(self) -> str:
        """The option's own help, then what is registered now."""
        return f"{self._help} {self.listing()}".strip()

    @help.setter
    def help(self, text: str | None) -> None:
        self._help = text or ""


def registered(hook: str) -> Callable[[], str]:
    """The listing of an option that takes a name registered under ``hook``."""
    return lambda: f"Registered: {', '.join(sorted(registry(hook))) or 'none'}."


def toolset_listing() -> str:
    """The listing of --tools: registered names and schemes, and that Python works too."""
    names = sorted(registry("register_toolsets"))
    schemes = ", ".join(f"{name}SPEC" for name in names if name.endswith(":"))
    plain = ", ".join(name for name in names if not name.endswith(":"))
    return f"Registered: {plain}; schemes: {schemes}. A module, file.py or module:attr works too."


def tools_option(help_text: str, **kwargs: Any) -> Callable[[Callable], Callable]:
    """--tools, whose help lists the registered toolsets."""
    return click.option(
        "--tools", "tools_spec", cls=ListedOption, listing=toolset_listing, help=help_text, **kwargs
    )


@click.group()
@click.version_option(package_name="sc-core")
def cli() -> None:
    """sc: train tool-using agents on tasks they write for themselves."""


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def plugins(as_json: bool) -> None:
    """List every plugin, built-in and installed: the hooks it implements and what it registered
    under each; a plugin that was skipped, with the reason."""
    rows = plugin_info()
    if as_json:
        emit_json(rows)
        return
    table = Table(Column("plugin", no_wrap=True), "version", "hooks: registered")
    for row in rows:
        name = row["name"] + " (built-in)" * row["builtin"]
        table.add_row(name, row["version"] or "", plugin_hooks(row))
    stdout.print(table)


def plugin_hooks(row: dict[str, Any]) -> Text:
    """A plugin's hooks, one a line, each with the names it registered; or why it was skipped."""
    if "error" in row:
        return Text(f"skipped: {row['error']}", style="red")
    lines = [
        f"{hook}: {', '.join(row['registered'][hook])}" if hook in row["registered"] else hook
        for hook in row["hooks"]
    ]
    return Text("\n".join(lines))


@cli.command()
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the tools as JSON function specs.")
def tools(spec: str, as_json: bool) -> None:
    """Show the tools of toolset SPEC: a name, a module, a .py file, or scheme:spec.

    Warnings go to stderr, one a line: what models will not be told (a tool or parameter
    without a description, a parameter without a type) and a state() that is not JSON data."""
    toolset = load_toolset(spec).create()
    try:
        for tool in toolset.tools.values():
            for problem in tool.warnings():
                warn(problem)
        state_problem = state_warning(toolset)
        if state_problem:
            warn(state_problem)
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


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, never wrapped, whatever brackets the message holds."""
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True, highlight=False)


def state_warning(toolset: Toolset) -> str | None:
    """What is wrong with the toolset's state after ``reset(0)``, or None: a state that is
    not JSON data would otherwise only show as the rejection reason of every task."""
    try:
        toolset.reset(0)
        toolset.state()
    except ScError as error:
        return f"{error} (after reset(0))"
    except Exception as error:
        return f"reset(0) then state() failed: {type(error).__name__}: {error}"
    return None


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
        "--sandbox", "sandbox_name", cls=ListedOption, listing=registered("register_sandboxes"),
        help="Sandbox to run code in (default: bwrap on Linux).",
    )(command)  # fmt: skip


def ray_option(command: Callable) -> Callable:
    """--ray [ADDRESS]: spread the sandbox work over a Ray cluster. Ray is imported only when
    it is given, so sc without Ray installed is unchanged."""
    return click.option(
        "--ray", "ray_address", is_flag=False, flag_value="local", default=None,
        metavar="[ADDRESS]",
        help="Run the filter's checks and the verifiers on a Ray cluster: at ADDRESS (HOST:PORT "
        "of its head, or auto), or, with --ray alone, on one started here for the command "
        "and stopped after it. Each node runs as many sandbox workers as it has CPUs.",
        callback=ray_address_not_a_file,
    )(command)  # fmt: skip


def ray_address_not_a_file(ctx: click.Context, param: click.Parameter, value: str | None):
    """``sc verify --ray tasks.jsonl`` takes the file for the address (the option's value is
    optional), and would then complain of a missing argument; say what happened instead."""
    if value and Path(value).exists():
        raise click.BadParameter(
            f"{value!r} is a file, not a cluster address: put --ray after the arguments, "
            "or write --ray=ADDRESS"
        )
    return value


def episode_options(
    max_turns: int,
    max_new_tokens: int,
    max_total_tokens: int = AgentConfig.max_total_tokens,
    episode: str = "episode",
) -> Callable[[Callable], Callable]:
    """--max-turns, --max-new-tokens and --max-total-tokens (AgentConfig's limits), shared by
    every command that runs episodes so that they mean the same everywhere; the defaults are
    each command's own."""
    limits = [
        ("--max-turns", max_turns, f"Assistant turns per {episode}."),
        ("--max-new-tokens", max_new_tokens, "Tokens per assistant turn."),
        ("--max-total-tokens", max_total_tokens, f"Tokens per {episode}, prompt included."),
    ]

    def decorate(command: Callable) -> Callable:
        for flag, default, help_text in reversed(limits):
            option = click.option(
                flag, type=int, default=default, show_default=True, help=help_text
            )
            command = option(command)
        return command

    return decorate


def answer_option(command: Callable) -> Callable:
    """--answer-protocol, shared by every command that runs executor episodes."""
    return click.option(
        "--answer-protocol",
        type=click.Choice(list(ANSWER_PROTOCOLS)),
        default=AgentConfig.answer_protocol,
        show_default=True,
        help="How the executor is told to answer: an <answer> tag, a plain last turn, or a "
        "final_answer tool.",
    )(command)


def open_pool(
    sandbox_name: str | None, workers: int, timeout: float, ray_address: str | None = None
) -> SandboxPool:
    warn_if_weaker(sandbox_name)
    return api.open_pool(sandbox_name, workers, timeout, ray_address)


def warn_if_weaker(sandbox_name: str | None) -> None:
    sandbox = get_sandbox(sandbox_name)
    if sandbox.weaker:
        warn(sandbox.weaker)


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
@tools_option("Toolset spec for every task (default: each task's).")
@click.option("--json", "as_json", is_flag=True, help="Print {total, kept, stages, tasks} as JSON.")
@click.option("--kept", "kept_path", type=click.Path(dir_okay=False), help="Write kept tasks here.")
@click.option(
    "--rejected",
    "rejected_path",
    type=click.Path(dir_okay=False),
    help="Write rejected lines, with reasons, here.",
)
@sandbox_options
@ray_option
def verify(
    tasks, tools_spec, as_json, kept_path, rejected_path, sandbox_name, workers, timeout,
    ray_address,
) -> None:  # fmt: skip
    """Run the CaT filter on TASKS (JSONL) and report what survives each stage."""
    items = list(read_tasks(tasks))
    tools = load_toolset(tools_spec) if tools_spec else None
    pool = open_pool(sandbox_name, workers, timeout, ray_address)
    with pool, progress_for(console) as progress:
        progress.start("verify", len(items), "tasks")
        kept = 0

        def advance(verdict: Verdict) -> None:
            nonlocal kept
            kept += verdict.kept
            progress.advance(f"{kept} pass so far")

        report = run_filter(items, pool, tools, on_done=advance)
    if kept_path:
        write_jsonl(kept_path, [v.item.task.to_dict() for v in report.kept])
    if rejected_path:
        write_jsonl(rejected_path, [api.rejected_row(v) for v in report.verdicts if not v.kept])
    if as_json:
        emit_json(report.to_dict())
    else:
        print_filter_summary(report)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print backends and aliases as JSON.")
def models(as_json: bool) -> None:
    """List the inference backends, the model aliases (where their weights come from, and
    whether they are on this machine), the default model and the model that writes its tasks."""
    backends = registry("register_models")
    aliases = {
        alias: {"description": source.description} | source.status().to_dict()
        for alias, source in model_sources().items()
    }
    default, challenger = default_model(), default_challenger()
    if as_json:
        emit_json(
            {
                "backends": sorted(backends),
                "aliases": aliases,
                "default": default,
                "default_challenger": challenger or default,
            }
        )
        return
    table = Table("backend", "description")
    for name, cls in sorted(backends.items()):
        table.add_row(name, (cls.__doc__ or "").strip().splitlines()[0])
    stdout.print(table)
    table = Table(
        Column("alias", no_wrap=True),
        Column("model", overflow="fold"),
        Column("weights", overflow="fold"),
        Column("here", no_wrap=True),
    )
    for alias, row in aliases.items():
        here = "available" if row["available"] else "not here"
        table.add_row(alias, row["description"], row["where"], here)
    stdout.print(table)
    stdout.print(
        f"default model: {default}; its tasks are written by {challenger or 'itself'}; a spec "
        "is [backend:]model, e.g. vllm:smollm2",
        markup=False,
    )


@cli.command()
@tools_option("The toolset to write tasks for.", required=True)
@click.option("-n", "attempts", type=int, default=20, show_default=True, help="Attempts.")
@click.option("--model", help=f"Model spec ({MODEL_DEFAULT}).")
@click.option(
    "--challenger-model",
    help="The model that writes the tasks (default: --model's paired challenger, "
    "qwen-coder-1.5b for qwen-coder-0.5b, else --model itself; see sc models).",
)
@click.option(
    "--strategy", cls=ListedOption, listing=registered("register_challengers"),
    help=f"Challenger strategy ({STRATEGY_DEFAULT}).",
)  # fmt: skip
@click.option("--examples", type=click.Path(dir_okay=False), help="Example tasks for seeded.")
@click.option("--out", default="tasks.jsonl", show_default=True, help="Kept tasks go here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first attempt.")
@click.option(
    "--constrained", is_flag=True, help="Grammar-constrained decoding of the task (vllm backends)."
)
@click.option(
    "--chunk", type=int, default=ChallengeConfig.chunk, show_default=True,
    help="Attempts generated, then saved, together (more keeps a GPU busier).",
)  # fmt: skip
@click.option(
    "--resume", is_flag=True, help="Go on with the attempts a killed challenge saved for --out."
)
@click.option(
    "--json", "as_json", is_flag=True,
    help="Print {attempts, kept, stages, diversity} as JSON (diversity: of the kept tasks).",
)  # fmt: skip
@episode_options(
    ChallengeConfig.explore_turns,
    ChallengeConfig.explore_tokens,
    ChallengeConfig.explore_total_tokens,
    episode="exploration episode (explore strategy)",
)
@click.option(
    "--task-tokens", type=int, default=ChallengeConfig.max_new_tokens, show_default=True,
    help="Tokens for each task the challenger writes.",
)  # fmt: skip
@sandbox_options
@ray_option
def challenge(
    tools_spec, attempts, model, challenger_model, strategy, examples, out, seed, constrained,
    chunk, resume, as_json, max_turns, max_new_tokens, max_total_tokens, task_tokens,
    sandbox_name, workers, timeout, ray_address,
) -> None:  # fmt: skip
    """Let the model explore a toolset and write Code-as-Tasks; keep those the filter passes.

    Attempts are saved beside --out as they are made (OUT.attempts.jsonl) until the filter's
    results are written; --resume goes on with them after a kill."""
    if chunk < 1:
        raise ScError("--chunk must be at least 1")
    config = ChallengeConfig(
        explore_turns=max_turns,
        explore_tokens=max_new_tokens,
        explore_total_tokens=max_total_tokens,
        max_new_tokens=task_tokens,
        examples=tuple(load_task_file(examples)) if examples else (),
        constrained=constrained,
        chunk=chunk,
    )
    stem = str(Path(out).with_suffix(""))
    saved = Path(stem + ".attempts.jsonl")
    if saved.exists() and not resume:
        raise ScError(
            f"{saved} holds the attempts of a challenge that did not finish: pass --resume to "
            "go on with them, or remove it"
        )
    strategy = strategy or api.default_strategy(tools_spec, config.examples)
    writer = default_challenger(model) if challenger_model is None else challenger_model
    pool = open_pool(sandbox_name, workers, timeout, ray_address)
    with pool, progress_for(console) as progress:
        progress.start(f"challenge ({strategy})", attempts, "attempts")

        def on_verified(_: Verdict) -> None:
            if progress.label != "filter":
                progress.start("filter", attempts, "tasks")
            progress.advance()

        result = api.challenge(
            tools_spec,
            attempts,
            writer or model or default_model(),
            strategy=strategy,
            config=config,
            seed=seed,
            pool=pool,
            on_attempts=progress.update,
            on_verified=on_verified,
            attempts_file=saved,
        )
    write_jsonl(out, [task.to_dict() for task in result.kept])
    rejected = stem + ".rejected.jsonl"
    write_jsonl(rejected, result.rejected)
    saved.unlink(missing_ok=True)
    figures = diversity.measure(result.kept)
    if as_json:
        emit_json(result.to_dict() | {"diversity": figures})
        return
    print_filter_summary(result.report)
    if figures["tasks"]:
        spread = figures["embedding_spread"]
        stdout.print(
            f"diversity: {figures['tools_per_task']['mean']:.2f} tools per task; "
            f"{figures['tool_sequences']['distinct']} of {figures['tasks']} tool sequences "
            f"distinct; instruction spread {'-' if spread is None else f'{spread:.3f}'}",
            soft_wrap=True,
        )
    stdout.print(f"kept tasks: {out}; rejected, with reasons: {rejected}", soft_wrap=True)


@cli.command(name="eval")
@click.option("--tasks", "tasks_path", required=True, type=click.Path(dir_okay=False))
@tools_option("Toolset spec for every task (default: each task's).")
@click.option("--model", help=f"Model spec ({MODEL_DEFAULT}).")
@click.option("-k", "k", type=int, default=1, show_default=True, help="Episodes per task.")
@click.option("--limit", type=int, metavar="N", help="Evaluate only the first N tasks of the file.")
@episode_options(AgentConfig.max_turns, AgentConfig.max_new_tokens)
@answer_option
@click.option("--temperature", type=float, default=AgentConfig.temperature, show_default=True)
@click.option(
    "--out", help="Folder for trajectories.jsonl and results.json (default: runs/eval-TIME)."
)
@click.option("--json", "as_json", is_flag=True, help="Print {pass_at_1, pass_at_k, k, tasks}.")
@sandbox_options
@ray_option
def eval_command(
    tasks_path, tools_spec, model, k, limit, max_turns, max_new_tokens, max_total_tokens,
    answer_protocol, temperature, out, as_json, sandbox_name, workers, timeout, ray_address,
) -> None:  # fmt: skip
    """Solve each task k times in multi-turn tool-use episodes; report pass@1 and pass@k."""
    if limit is not None and limit < 1:
        raise ScError("--limit must be at least 1")
    tasks = load_task_file(tasks_path)[:limit]
    agent = AgentConfig(
        max_turns=max_turns,
        max_new_tokens=max_new_tokens,
        max_total_tokens=max_total_tokens,
        temperature=temperature,
        answer_protocol=answer_protocol,
    )
    out_dir = Path(out or f"runs/eval-{time.strftime('%Y%m%d-%H%M%S')}")
    pool = open_pool(sandbox_name, workers, timeout, ray_address)
    with pool, progress_for(console) as progress:
        progress.start("eval", len(tasks) * k, "episodes")
        report = api.evaluate(
            tasks, tools_spec, model, k=k, agent=agent, pool=pool, on_step=progress.update
        )
    result = report.to_dict()
    write_jsonl(out_dir / "trajectories.jsonl", [item.to_dict() for item in report.scored])
    write_json(out_dir / "results.json", result)
    if as_json:
        emit_json(result)
        return
    table = Table("task", "passed", "finish", title=f"{len(tasks)} tasks, k={k}")
    for row in result["tasks"]:
        table.add_row(row["id"], f"{row['passed']}/{row['n']}", ", ".join(row["finish"]))
    stdout.print(table)
    stdout.print(f"pass@1 {result['pass_at_1']:.3f}   pass@{k} {result['pass_at_k']:.3f}")
    stdout.print(f"trajectories: {out_dir / 'trajectories.jsonl'}", soft_wrap=True)


def launcher_options(command):
    """--processes and --accelerate-config: training in several processes."""
    command = click.option(
        "--accelerate-config",
        type=click.Path(dir_okay=False),
        help="An accelerate config file (e.g. DeepSpeed ZeRO-2) for the training processes.",
    )(command)
    return click.option(
        "--processes",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Training processes (one per GPU; gloo on CPU), started by accelerate launch.",
    )(command)


def relaunch(processes: int, config_file: str | None) -> None:
    """Run this same command line again under ``accelerate launch`` and exit with its status;
    the launched processes see ``SC_LAUNCHED`` and train instead of launching again."""
    line = distributed.launch_command(sys.argv[1:], processes, config_file)
    env = os.environ | {distributed.LAUNCHED: "1"}
    raise click.exceptions.Exit(subprocess.run(line, env=env).returncode)


def backend_options(command):
    """--backend, --option and --shaper, shared by train and run."""
    command = click.option(
        "--shaper", default="binary", show_default=True, cls=ListedOption,
        listing=registered("register_reward_shapers"), help="Reward shaper.",
    )(command)  # fmt: skip
    command = click.option(
        "--option",
        "options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A setting of the RL backend's config (repeatable), e.g. --option learning_rate=1e-5.",
    )(command)
    return click.option(
        "--backend",
        default="rft",
        show_default=True,
        cls=ListedOption,
        listing=registered("register_rl_backends"),
        help="RL backend, the trainer (rft: rejection fine-tuning, the paper's main setting); "
        "the model's inference backend is --model's prefix, e.g. vllm:smollm2.",
    )(command)


@cli.command()
@click.argument("tasks_path", metavar="TASKS", type=click.Path(dir_okay=False))
@tools_option("Toolset spec for every task (default: each task's).")
@click.option("--model", help=f"Starting checkpoint: a path, hub id or alias ({MODEL_DEFAULT}).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Checkpoint folder.")
@click.option(
    "--teacher", help="A stronger model whose rollouts the executor learns from (distillation)."
)
@episode_options(AgentConfig.max_turns, AgentConfig.max_new_tokens)
@answer_option
@backend_options
@sandbox_options
@launcher_options
@click.option(
    "--trajectories", type=click.Path(dir_okay=False),
    help="Also write every scored training rollout to this JSONL file.",
)  # fmt: skip
def train(
    tasks_path, tools_spec, model, out, teacher, max_turns, max_new_tokens, max_total_tokens,
    answer_protocol, backend, options, shaper, sandbox_name, workers, timeout, processes,
    accelerate_config, trajectories,
) -> None:  # fmt: skip
    """Train the executor on the Code-as-Tasks in TASKS and save a checkpoint in --out."""
    if (processes > 1 or accelerate_config) and not distributed.launched():
        relaunch(processes, accelerate_config)
    tasks = load_task_file(tasks_path)
    agent = AgentConfig(
        max_turns=max_turns,
        max_new_tokens=max_new_tokens,
        max_total_tokens=max_total_tokens,
        answer_protocol=answer_protocol,
    )
    metrics: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []

    def on_samples(batch: list) -> None:
        if trajectories:
            samples.extend(sample.to_dict() for sample in batch)
            write_jsonl(Path(trajectories), samples)

    with open_pool(sandbox_name, workers, timeout) as pool, progress_for(console) as progress:
        progress.start("train", unit="steps")

        def on_metrics(row: dict[str, Any]) -> None:
            metrics.append(row)
            step = row["step"] if isinstance(row.get("step"), int) else len(metrics)
            shown = ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float))
            progress.update(step, status=shown)

        checkpoint = api.train(
            tasks,
            out,
            tools_spec,
            model,
            backend=backend,
            options=parse_options(options),
            shaper=shaper,
            agent=agent,
            pool=pool,
            on_metrics=on_metrics,
            on_samples=on_samples,
            teacher=teacher,
        )
    if distributed.is_main():  # one process writes; the others trained the same weights
        write_jsonl(Path(out) / "train_metrics.jsonl", metrics)
        stdout.print(f"checkpoint: {checkpoint} (sc eval --model {checkpoint})", soft_wrap=True)


@cli.command()
@tools_option("The toolset to challenge and train on.")
@click.option("--model", help=f"Starting executor ({MODEL_DEFAULT}).")
@click.option("--iterations", type=int, default=RunConfig.iterations, show_default=True)
@click.option(
    "--tasks-per-iteration", type=int, default=RunConfig.tasks_per_iteration, show_default=True,
    help="Challenger attempts per iteration.",
)  # fmt: skip
@click.option(
    "--strategy", cls=ListedOption, listing=registered("register_challengers"),
    help=f"Challenger strategy ({STRATEGY_DEFAULT}).",
)  # fmt: skip
@click.option(
    "--challenger-model",
    help="A fixed model writes the tasks (default: --model's paired challenger, "
    "qwen-coder-1.5b for qwen-coder-0.5b; '' or no pair: the executor, see "
    "--challenger-follows).",
)
@click.option(
    "--teacher", help="A stronger model whose rollouts the executor learns from (distillation)."
)
@click.option(
    "--challenger-follows/--challenger-fixed", default=True, show_default=True,
    help="Whether the challenger is the latest checkpoint or stays the starting model.",
)  # fmt: skip
@click.option("--constrained", is_flag=True, help="Grammar-constrained task writing (vllm).")
@click.option(
    "--challenge-chunk", type=int, default=RunConfig.challenge_chunk, show_default=True,
    help="Challenger attempts generated, then saved, together.",
)  # fmt: skip
@click.option(
    "--tasks",
    "extra_tasks",
    type=click.Path(dir_okay=False),
    help="Task file added to the first iteration's candidates (same filter).",
)
@click.option(
    "--eval-tasks",
    type=click.Path(dir_okay=False),
    help="Fixed evaluation set (default: a held-out split of the generated tasks).",
)
@click.option("--eval-k", type=int, default=RunConfig.eval_k, show_default=True)
@click.option(
    "--learnability/--no-learnability",
    default=False,
    show_default=True,
    help="Train only on tasks the executor solves sometimes, not always.",
)
@click.option(
    "--curriculum", is_flag=True,
    help="From iteration 2 on, tell the challenger which recent tasks the executor solved "
    "always, sometimes or never, and ask for ones it solves sometimes (20-80%). Implies "
    "--learnability, whose check measures those pass rates.",
)  # fmt: skip
@episode_options(
    RunConfig.max_turns,
    RunConfig.max_new_tokens,
    RunConfig.max_total_tokens,
    episode="episode or exploration",
)
@answer_option
@click.option(
    "--task-tokens",
    type=int,
    default=RunConfig.task_tokens,
    show_default=True,
    help="Tokens for each task the challenger writes.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--name", help="Run name: the run directory is runs/NAME (default: the time).")
@click.option(
    "--resume",
    is_flag=True,
    help="Go on with runs/NAME where it stopped, with the settings in its config.toml "
    "(--iterations N also given: go on to N iterations).",
)
@click.option("--json", "as_json", is_flag=True, help="End with {run_dir, iterations} as JSON.")
@backend_options
@sandbox_options
@launcher_options
@ray_option
def run(resume, as_json, options, name, **settings) -> None:
    """The self-challenge loop: challenge, filter, train and evaluate, for N iterations."""
    runs = Path("runs")
    settings["tools"] = settings.pop("tools_spec")
    settings["tasks"] = settings.pop("extra_tasks")
    settings["sandbox"] = settings.pop("sandbox_name")
    settings["ray"] = settings.pop("ray_address")
    with progress_for(console) as progress:
        events = Events(
            phase=lambda number, phase: progress.start(
                f"iteration {number} {phase}",
                unit="attempts" if phase == "challenge" else "episodes",
            ),
            progress=progress.update,
            note=progress.note,
        )
        if resume:
            if not name:
                raise ScError("--resume needs --name of the run to go on with")
            given = click.get_current_context().get_parameter_source("iterations")
            more = settings["iterations"] if given is ParameterSource.COMMANDLINE else None
            loop = Run.resume(runs / name, iterations=more, events=events)
        else:
            if not settings["tools"]:
                raise ScError("--tools is required (a toolset name, module, file or scheme:spec)")
            config = RunConfig(
                name=name or time.strftime("run-%Y%m%d-%H%M%S"),
                options=parse_options(options),
                **{key: value for key, value in settings.items() if value is not None},
            )
            warn_if_weaker(config.sandbox or None)
            loop = Run.create(config, runs, events=events)
        result = loop.go()
    report = write_report(loop.dir.path)
    if as_json:
        emit_json(result)
        return
    print_summary(loop.dir.path)
    stdout.print(f"run directory: {loop.dir.path}; report: {report}", soft_wrap=True)


@cli.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
def report(run_dir) -> None:
    """Write RUN/report.html (plots of filter yield, task diversity, reward and pass rates) and
    print a summary.

    RUN is a run directory, or a run name under runs/."""
    path = Path(run_dir)
    if not path.is_dir() and (Path("runs") / run_dir).is_dir():
        path = Path("runs") / run_dir
    written = write_report(path)
    print_summary(path)
    stdout.print(f"report: {written}", soft_wrap=True)


def print_summary(run_dir: Path) -> None:
    from .report import COLUMNS, cell, read_metrics

    rows = summary_rows(read_metrics(run_dir))
    columns = [name for name in COLUMNS if name != "train_note"]
    table = Table(*(COLUMNS[name] for name in columns), title=str(run_dir))
    for row in rows:
        table.add_row(*(cell(row.get(name)) for name in columns))
    stdout.print(table)
    for row in rows:
        if row.get("train_note"):
            stdout.print(f"iteration {row['iteration']}: {row['train_note']}")
    evaluated = [row for row in rows if row.get("pass_at_1_after") is not None]
    if evaluated and rows[0].get("pass_at_1_before") is not None:
        before, after = rows[0]["pass_at_1_before"], evaluated[-1]["pass_at_1_after"]
        stdout.print(
            f"held-out pass@1: {before:.3f} before, {after:.3f} after "
            f"{len(evaluated)} iteration{'s' * (len(evaluated) > 1)} ({after - before:+.3f})"
        )


def main() -> None:
    """Entry point: plugin commands, then the CLI; errors as one line, never a traceback."""
    # SIGTERM unwinds like Ctrl-C, so backends close (a vLLM engine is a process of its own
    # and outlives an sc killed without cleanup)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
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
