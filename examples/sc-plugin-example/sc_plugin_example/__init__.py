"""sc-plugin-example: a complete, minimal third-party plugin for sc.

sc loads this module through the entry point ``example = "sc_plugin_example"`` in the group
``sc`` (see pyproject.toml) and calls the hooks below, each marked with ``@hookimpl``. The hooks
and what ``register`` expects are documented in ``sc_core/hookspecs.py``.

- ``register_toolsets``: the ``todo`` toolset (``sc tools todo``), a stateful to-do list;
- ``register_reward_shapers``: ``example_turn_penalty``, a shaper
  ``(score: float, episode: dict) -> float`` (see :mod:`sc_plugin_example.shapers`);
- ``register_challengers``: ``example_template``, a challenger that writes ``todo`` tasks from
  a template, without a model (``sc challenge --tools todo --strategy example_template``; see
  :mod:`sc_plugin_example.templates`).
"""

from sc_core import hookimpl
from sc_core.tools import Toolset

from .shapers import turn_penalty
from .templates import TemplateChallenger
from .todo import TodoList

__all__ = ["TemplateChallenger", "TodoList", "make_toolset", "turn_penalty"]


def make_toolset() -> Toolset:
    """A fresh ``todo`` toolset; sc calls this once per environment it needs."""
    return Toolset.from_object(TodoList(), "todo")


@hookimpl
def register_toolsets(register):
    register("todo", make_toolset)


@hookimpl
def register_reward_shapers(register):
    register("example_turn_penalty", turn_penalty)


@hookimpl
def register_challengers(register):
    register("example_template", TemplateChallenger)
