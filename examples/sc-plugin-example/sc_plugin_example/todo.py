"""The ``todo`` toolset: a small, stateful to-do list.

A toolset class needs only ``reset(seed)`` and ``state()`` (and optionally ``close()``); every other
public method is a tool, described to the model by its type hints and Google-style docstring.
Tools refuse bad calls with :class:`~sc_core.tools.ToolError`, whose message the caller sees.

``reset(seed)`` builds the same list for the same seed, and the ids the tools create are
deterministic (``T1``, ``T2``, ...), so a Code-as-Task's verifier can check the final ``state()``.
"""

from __future__ import annotations

import copy
import datetime
import random
from typing import Any, Literal

from sc_core.tools import ToolError

Priority = Literal["low", "normal", "high"]
PRIORITIES = ("low", "normal", "high")
MAX_TODOS = 100
MAX_TITLE = 120
N_SEEDED = 8
FIRST_DAY = datetime.date(2025, 7, 1)

_TITLES = (
    "Pay the electricity bill",
    "Book a dentist appointment",
    "Water the plants",
    "Call grandma",
    "Renew the car insurance",
    "Buy birthday present for Sam",
    "Clean the garage",
    "Return library books",
    "Update CV",
    "Fix the leaking tap",
    "Plan the team offsite",
    "Cancel the gym membership",
    "Back up the laptop",
    "Order new running shoes",
)


def _date(text: str) -> str:
    try:
        return datetime.date.fromisoformat(text).isoformat()
    except ValueError as error:
        raise ToolError(f"due must be a date as YYYY-MM-DD, got {text!r}") from error


class TodoList:
    """A personal to-do list: items with a title, a priority, an optional due date, done or not."""

    def __init__(self) -> None:
        self.reset(0)

    # -- environment ----------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        """Fill the list with the items that ``seed`` determines."""
        rng = random.Random(seed)
        self._todos: dict[str, dict[str, Any]] = {}
        self._next = 1
        for title in rng.sample(_TITLES, N_SEEDED):
            due = ""
            if rng.random() < 0.75:
                due = (FIRST_DAY + datetime.timedelta(days=rng.randint(0, 30))).isoformat()
            todo = self._create(title, rng.choice(PRIORITIES), due)
            todo["done"] = rng.random() < 0.25

    def state(self) -> dict[str, Any]:
        """Every item, by id, as plain JSON data (a copy)."""
        return {"todos": copy.deepcopy(self._todos)}

    def _create(self, title: str, priority: str, due: str) -> dict[str, Any]:
        todo_id = f"T{self._next}"
        self._next += 1
        todo = {"id": todo_id, "title": title, "priority": priority, "due": due, "done": False}
        self._todos[todo_id] = todo
        return todo

    def _get(self, todo_id: str) -> dict[str, Any]:
        todo = self._todos.get(todo_id)
        if todo is None:
            raise ToolError(f"no to-do with id {todo_id!r} (ids look like 'T3')")
        return todo

    # -- tools ----------------------------------------------------------------------------------

    def add_todo(self, title: str, priority: Priority = "normal", due: str = "") -> dict[str, Any]:
        """Add an open to-do and return it (with its new id).

        Args:
            title: What to do; 1 to 120 characters.
            priority: "low", "normal" or "high".
            due: The due date as YYYY-MM-DD, or "" for none.
        """
        title = title.strip()
        if not 0 < len(title) <= MAX_TITLE:
            raise ToolError(f"title must be 1 to {MAX_TITLE} characters")
        if len(self._todos) >= MAX_TODOS:
            raise ToolError(f"the list is full ({MAX_TODOS} items); delete some first")
        return dict(self._create(title, priority, _date(due) if due else ""))

    def list_todos(self, status: Literal["open", "done", "all"] = "open") -> list[dict[str, Any]]:
        """List to-dos in id order.

        Args:
            status: "open" (not done yet), "done", or "all".
        """
        return [
            dict(todo)
            for todo in self._todos.values()
            if status == "all" or todo["done"] == (status == "done")
        ]

    def find_todos(self, text: str) -> list[dict[str, Any]]:
        """Find to-dos, open or done, whose title contains a text (ignoring case).

        Args:
            text: The text to look for, e.g. "bill".
        """
        needle = text.strip().lower()
        if not needle:
            raise ToolError("text must not be empty")
        return [dict(todo) for todo in self._todos.values() if needle in todo["title"].lower()]

    def complete_todo(self, todo_id: str) -> dict[str, Any]:
        """Mark an open to-do as done and return it.

        Args:
            todo_id: The to-do's id, e.g. "T3".
        """
        todo = self._get(todo_id)
        if todo["done"]:
            raise ToolError(f"{todo_id} is already done")
        todo["done"] = True
        return dict(todo)

    def set_due_date(self, todo_id: str, due: str) -> dict[str, Any]:
        """Set or clear the due date of a to-do and return it.

        Args:
            todo_id: The to-do's id, e.g. "T3".
            due: The new due date as YYYY-MM-DD, or "" to clear it.
        """
        todo = self._get(todo_id)
        todo["due"] = _date(due) if due else ""
        return dict(todo)

    def delete_todo(self, todo_id: str) -> dict[str, Any]:
        """Delete a to-do and return what it was.

        Args:
            todo_id: The to-do's id, e.g. "T3".
        """
        self._get(todo_id)
        return self._todos.pop(todo_id)
