"""The ``sc`` command line. Plugins add commands through the ``register_commands`` hook."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import ScError
from .plugins import call_each, plugin_info
from .sandbox import Limits, SandboxPool, get_sandbox
from .task import read_tasks, write_jsonl
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
    table = Table("plugin", "version", "hooks")
    for row in rows:
        hooks = ", ".join(row["hooks"]) or f"[red]failed: {row['error']}[/red]"
        table.add_row(
            row["name"] + (" (built-in)" if row["builtin"] else ""), row["version"] or "", hooks
        )
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


@cli.command()
@click.argument("tasks", type=click.Path(dir_okay=False))
@click.option(
    "--tools", "tools_spec", help="Toolset spec for every task (default: each task's own)."
)
@click.option("--sandbox", "sandbox_name", help="Sandbox to run code in (default: bwrap on Linux).")
@click.option("--json", "as_json", is_flag=True, help="Print {total, kept, stages, tasks} as JSON.")
@click.option("--kept", "kept_path", type=click.Path(dir_okay=False), help="Write kept tasks here.")
@click.option(
    "--rejected",
    "rejected_path",
    type=click.Path(dir_okay=False),
    help="Write rejected lines, with reasons, here.",
)
@click.option(
    "--workers", type=int, default=os.cpu_count() or 1, show_default=True, help="Sandbox workers."
)
@click.option(
    "--timeout",
    type=float,
    default=Limits.wall_s,
    show_default=True,
    help="Wall-clock seconds per program.",
)
def verify(
    tasks, tools_spec, sandbox_name, as_json, kept_path, rejected_path, workers, timeout
) -> None:
    """Run the CaT filter on TASKS (JSONL) and report what survives each stage."""
    items = list(read_tasks(tasks))
    tools = load_toolset(tools_spec) if tools_spec else None
    sandbox = get_sandbox(sandbox_name)
    if sandbox.weaker:
        console.print(f"[yellow]warning:[/yellow] {sandbox.weaker}")
    limits = Limits(wall_s=timeout)
    with (
        progress_bar("verifying") as progress,
        SandboxPool(sandbox, limits, max(1, workers)) as pool,
    ):
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
