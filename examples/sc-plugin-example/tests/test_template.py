"""The ``example_template`` challenger: tasks from a template, declined seeds, no model."""

from __future__ import annotations

import pytest
from sc_plugin_example import TemplateChallenger, make_toolset

from sc_core.errors import ScError
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.tools import ToolsetSpec, load_toolset
from sc_core.verify import run_filter

TODO = ToolsetSpec("todo", make_toolset)


def test_one_attempt_per_seed_and_a_reason_for_each_declined_one():
    assert TemplateChallenger.needs_model is False  # sc builds it with model=None
    steps = []
    attempts = TemplateChallenger(None).attempt(TODO, [0, 5, 2], on_step=steps.append)
    assert [attempt.seed for attempt in attempts] == [0, 5, 2]
    assert attempts[0].text.startswith("<instruction>Mark every open low-priority to-do")
    assert attempts[1].declined == "no open high-priority to-do to finish"
    assert attempts[2].text.startswith("<instruction>Mark every open high-priority to-do")
    assert steps == [1, 2, 3]


def test_its_tasks_pass_the_filter_and_declined_seeds_are_rejected_with_the_reason():
    lines = TemplateChallenger(None).candidates(TODO, [0, 1, 2, 5])
    with SandboxPool(get_sandbox(), Limits(), size=2) as pool:
        report = run_filter(lines, pool, TODO)
    assert [verdict.kept for verdict in report.verdicts] == [True, True, True, False]
    declined = report.verdicts[3]
    assert (declined.stage, declined.reason) == (
        "parses",
        "declined: no open high-priority to-do to finish",
    )
    kept = report.verdicts[0].item.task
    assert (kept.toolset, kept.seed) == ("todo", 0)
    assert kept.provenance["strategy"] == "example_template"
    assert kept.provenance["model"] is None  # no model wrote it


def test_another_toolset_is_a_one_line_error():
    with pytest.raises(ScError, match="writes tasks for todo, not for 'calculator'"):
        TemplateChallenger(None).attempt(load_toolset("calculator"), [0])


def test_registered_through_the_hook():
    from sc_plugin_example import register_challengers

    registered = {}
    register_challengers(register=lambda name, strategy: registered.setdefault(name, strategy))
    assert registered == {"example_template": TemplateChallenger}
