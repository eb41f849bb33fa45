"""Progress on stderr (sc_core.progress): throttled plain lines off a terminal, with a fake
clock, and the choice between lines and bars."""

from __future__ import annotations

import io

from rich.console import Console

from sc_core.progress import BarProgress, LineProgress, progress_for


class Clock:
    """Seconds that pass only when a test says so."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def plain() -> tuple[LineProgress, Clock, io.StringIO]:
    out, clock = io.StringIO(), Clock()
    console = Console(file=out, width=200)
    return LineProgress(console, clock=clock), clock, out


def lines(out: io.StringIO) -> list[str]:
    return out.getvalue().splitlines()


def test_thousands_of_items_make_a_line_per_tenth_not_per_item():
    progress, clock, out = plain()
    with progress:
        progress.start("verify", 2000, "tasks")
        for _ in range(2000):
            clock.now += 0.001  # two seconds in all: the time rule never fires
            progress.advance()
    shown = lines(out)
    assert shown[0] == "sc: verify: started (2000 tasks)"
    assert len(shown) == 11
    assert shown[1].startswith("sc: verify: 200/2000 tasks (1000/s, 0:00 elapsed)")
    assert shown[-1].startswith("sc: verify: 2000/2000 tasks (")


def test_slow_work_makes_a_line_every_ten_seconds():
    progress, clock, out = plain()
    progress.start("iteration 1 challenge", 200, "attempts")
    for done in range(1, 31):  # 30 attempts, 3 s apart: 15% in all
        clock.now += 3
        progress.update(done)
    assert lines(out)[1:] == [
        "sc: iteration 1 challenge: 4/200 attempts (0.33/s, 0:12 elapsed)",
        "sc: iteration 1 challenge: 8/200 attempts (0.33/s, 0:24 elapsed)",
        "sc: iteration 1 challenge: 12/200 attempts (0.33/s, 0:36 elapsed)",
        "sc: iteration 1 challenge: 16/200 attempts (0.33/s, 0:48 elapsed)",
        "sc: iteration 1 challenge: 20/200 attempts (0.33/s, 1:00 elapsed)",
        "sc: iteration 1 challenge: 24/200 attempts (0.33/s, 1:12 elapsed)",
        "sc: iteration 1 challenge: 28/200 attempts (0.33/s, 1:24 elapsed)",
    ]


def test_the_final_count_of_a_phase_is_always_shown_once():
    progress, clock, out = plain()
    with progress:
        progress.start("eval-before", None, "episodes")
        clock.now += 1
        progress.update(3, total=136)  # the total comes with the first count
        clock.now += 1
        progress.update(5)
        progress.start("train", unit="steps")  # the next phase ends this one
        clock.now += 3725
        progress.update(7, status="loss 0.5")
    assert lines(out) == [
        "sc: eval-before: started",
        "sc: eval-before: 5/136 episodes (2.5/s, 0:02 elapsed)",
        "sc: train: started",
        "sc: train: 7 steps (0.00/s, 1:02:05 elapsed), loss 0.5",
    ]


def test_a_status_change_alone_prints_nothing_and_notes_are_lines():
    progress, clock, out = plain()
    with progress:
        progress.start("challenge", 10, "attempts")
        progress.update(0, status="writing")
        progress.note("iteration 1: no task to train on; the executor stays as it was")
    assert lines(out) == [
        "sc: challenge: started (10 attempts)",
        "sc: note: iteration 1: no task to train on; the executor stays as it was",
    ]


def test_lines_off_a_terminal_and_bars_on_one():
    assert isinstance(progress_for(Console(file=io.StringIO())), LineProgress)
    terminal = Console(file=io.StringIO(), force_terminal=True, force_interactive=True)
    assert isinstance(progress_for(terminal), BarProgress)
    not_animated = Console(file=io.StringIO(), force_terminal=True, force_interactive=False)
    assert isinstance(progress_for(not_animated), LineProgress)


def test_bars_take_the_same_calls():
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, force_interactive=True, width=120)
    with progress_for(console) as progress:
        progress.start("verify [bold]x[/bold]", 3, "tasks")  # a label is not markup
        progress.advance("1 pass so far")
        progress.note("a [note]")
        progress.start("filter")
        progress.update(2, total=4)
    assert "verify [bold]x[/bold]" in out.getvalue() and "a [note]" in out.getvalue()
