"""The ``example_template`` challenger: tasks for ``todo`` from a template, without a model.

A challenger subclasses :class:`sc_core.challenge.Challenger` and implements
``attempt(toolset, seeds, on_step)``: one :class:`~sc_core.challenge.Attempt` per seed, in
order, holding a task in sc's tagged format (:func:`~sc_core.challenge.render_cat` writes it)
or, for a seed it has no task for, the reason (``Attempt(seed, declined=...)``). sc gives each
task its toolset, seed, id and provenance, and puts every attempt through the CaT filter, which
records a declined one as a rejection with its reason. ``needs_model = False`` tells sc to load
no model for this strategy (the constructor gets ``model=None``).

The template: "mark every open to-do of one priority as done", the priority picked by the seed.
A seed whose list has no open to-do of that priority is declined.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sc_core.challenge import Attempt, Challenger, render_cat
from sc_core.errors import ScError
from sc_core.task import CodeAsTask
from sc_core.tools import ToolsetSpec

from .todo import PRIORITIES

INSTRUCTION = (
    "Mark every open {priority}-priority to-do as done, and nothing else. "
    "Answer with how many you completed."
)
VERIFY = """def verify(state, answer):
    done = sorted(t['id'] for t in state['todos'].values() if t['done'])
    return answer == {count} and done == {done!r}
"""
SOLUTION = """def solve(tools):
    completed = 0
    for todo in tools.list_todos(status='open'):
        if todo['priority'] == {priority!r}:
            tools.complete_todo(todo_id=todo['id'])
            completed += 1
    return completed
"""
FAILURES = (  # wrong in every case the template writes: each must fail verify
    "def solve(tools):\n    return {count}\n",  # answers right, completes nothing
    "def solve(tools):\n"
    "    for todo in tools.list_todos(status='open'):\n"
    "        if todo['priority'] == {priority!r}:\n"
    "            tools.complete_todo(todo_id=todo['id'])\n"
    "    return 0\n",  # completes the right ones, answers wrong
)


class TemplateChallenger(Challenger):
    """Fills in the template for each seed's to-do list; no model writes anything."""

    name = "example_template"
    needs_model = False

    def attempt(
        self, toolset: ToolsetSpec, seeds: list[int], on_step: Callable[[int], None] | None = None
    ) -> list[Attempt]:
        instance = toolset.create()
        try:
            if "complete_todo" not in instance.tools:
                raise ScError(f"example_template writes tasks for todo, not for {toolset.spec!r}")
            attempts = []
            for seed in seeds:
                instance.reset(seed)  # the list the task's programs will start from
                attempts.append(fill_in(seed, instance.state()["todos"]))
                if on_step:
                    on_step(len(attempts))
        finally:
            instance.close()
        return attempts


def fill_in(seed: int, todos: dict[str, dict[str, Any]]) -> Attempt:
    """The template filled in for the list ``todos`` of ``seed``, or declined when that list
    has nothing for it to ask."""
    priority = PRIORITIES[seed % len(PRIORITIES)]
    finishing = [key for key, todo in todos.items() if todo["priority"] == priority]
    finishing = [key for key in finishing if not todos[key]["done"]]
    if not finishing:
        return Attempt(seed, declined=f"no open {priority}-priority to-do to finish")
    done = sorted(finishing + [key for key, todo in todos.items() if todo["done"]])
    values = {"priority": priority, "count": len(finishing), "done": done}
    task = CodeAsTask.from_dict(  # no id: render_cat writes only the four parts
        {
            "toolset": "todo",
            "instruction": INSTRUCTION.format(**values),
            "verify": VERIFY.format(**values),
            "solution": SOLUTION.format(**values),
            "failures": [failure.format(**values) for failure in FAILURES],
        }
    )
    return Attempt(seed, render_cat(task))
