"""Progress of long commands on stderr: rich bars on a terminal, plain lines everywhere else.

A bar that redraws itself leaves nothing readable in a CI log, a ``nohup`` file or ``2> log``,
so there the same calls print a line per chunk of work instead, with counts and rates, e.g.
``sc: iteration 1 challenge: 64/200 attempts (0.41/s, 2:36 elapsed)``. Lines are throttled
(thousands of items make a dozen lines, not thousands), but a phase's start and its final count
are always printed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich import progress as bars
from rich.console import Console
from rich.markup import escape


class Progress:
    """One command's progress, a phase at a time; a context manager. :func:`progress_for`
    picks bars or lines, so commands make the same calls either way."""

    def __init__(self, console: Console):
        self.console = console
        self.label, self.unit, self.status = "", "", ""
        self.total: int | None = None
        self.done = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.end()

    def start(self, label: str, total: int | None = None, unit: str = "") -> None:
        """A new phase of ``total`` ``unit`` (None: not known yet); the current one ends."""
        self.end()
        self.label, self.total, self.unit, self.done, self.status = label, total, unit, 0, ""
        self.started()

    def update(self, done: int, total: int | None = None, status: str | None = None) -> None:
        """``done`` items of the current phase are done (``total``, ``status``: if they changed)."""
        self.done = done
        self.total = self.total if total is None else total
        self.status = self.status if status is None else status
        self.changed()

    def advance(self, status: str | None = None) -> None:
        """One more item is done."""
        self.update(self.done + 1, status=status)

    def note(self, message: str) -> None:
        """Something the user should know, between the progress reports."""
        self.console.print(
            f"[yellow]note:[/yellow] {escape(message)}", highlight=False, soft_wrap=True
        )

    def started(self) -> None:
        """Show that the phase in ``label`` started."""

    def changed(self) -> None:
        """Show ``done``, ``total`` and ``status``."""

    def end(self) -> None:
        """The current phase (if any) is over."""


class BarProgress(Progress):
    """A rich bar per phase, drawn over itself and gone when the command ends (a terminal)."""

    def __init__(self, console: Console):
        super().__init__(console)
        self.bars = bars.Progress(
            bars.TextColumn("{task.description}"),
            bars.BarColumn(),
            bars.MofNCompleteColumn(),
            bars.TextColumn("{task.fields[unit]}"),
            bars.TimeElapsedColumn(),
            bars.TextColumn("{task.fields[status]}"),
            console=console,
            transient=True,
        )
        self.bar: bars.TaskID | None = None

    def __enter__(self) -> Progress:
        self.bars.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.bars.stop()

    def started(self) -> None:
        self.bar = self.bars.add_task(
            escape(self.label), total=self.total, unit=self.unit, status=""
        )

    def changed(self) -> None:
        if self.bar is not None:
            self.bars.update(self.bar, completed=self.done, total=self.total, status=self.status)

    def end(self) -> None:
        if self.bar is not None:
            self.bars.remove_task(self.bar)
            self.bar = None


class LineProgress(Progress):
    """A line at most every ``every_s`` seconds or ``every_share`` of the total, and the final
    count of each phase (a pipe or a file)."""

    def __init__(
        self,
        console: Console,
        clock: Callable[[], float] = time.monotonic,
        every_s: float = 10.0,
        every_share: float = 0.1,
    ):
        super().__init__(console)
        self.clock, self.every_s, self.every_share = clock, every_s, every_share
        self.started_at = self.updated_at = self.printed_at = 0.0
        self.printed = 0

    def note(self, message: str) -> None:
        self.say(f"note: {message}")

    def started(self) -> None:
        self.started_at = self.updated_at = self.printed_at = self.clock()
        self.printed = 0
        self.say(f"{self.label}: started" + (f" ({self.total} {self.unit})" if self.total else ""))

    def changed(self) -> None:
        self.updated_at = self.clock()
        if self.done != self.printed and self.due():
            self.report()

    def end(self) -> None:
        if self.label and self.done != self.printed:
            self.report()

    def due(self) -> bool:
        if self.total and self.done >= self.total:
            return True
        if self.updated_at - self.printed_at >= self.every_s:
            return True
        return bool(self.total) and self.done - self.printed >= self.every_share * self.total

    def report(self) -> None:
        """The counts and rate as of the last update."""
        elapsed = self.updated_at - self.started_at
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        count += f" {self.unit}" if self.unit else ""
        rate = f"{_rate(self.done / elapsed)}/s, " if elapsed > 0 else ""
        status = f", {self.status}" if self.status else ""
        self.say(f"{self.label}: {count} ({rate}{_clock(elapsed)} elapsed){status}")
        self.printed, self.printed_at = self.done, self.updated_at

    def say(self, text: str) -> None:
        self.console.print(f"sc: {text}", markup=False, highlight=False, soft_wrap=True)


def progress_for(console: Console) -> Progress:
    """Bars where rich animates them, lines elsewhere: a pipe or a file, a dumb terminal, or CI
    that forces colour but says ``TTY_INTERACTIVE=0`` (rich draws a bar that is not animated
    once, when it ends, and a transient one never)."""
    animated = console.is_terminal and console.is_interactive
    return BarProgress(console) if animated else LineProgress(console)


def _rate(per_s: float) -> str:
    return f"{per_s:.2f}" if per_s < 1 else f"{per_s:.1f}" if per_s < 10 else f"{per_s:.0f}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
