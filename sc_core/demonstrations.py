"""Demonstrations: each task's example solution, replayed as an episode the executor could write.

A kept Code-as-Task carries a solution that passes its verifier. Run in the sandbox, the solution
makes tool calls; played as the executor's own turns (one call per turn, in the executor's
tool-call format, then a turn that gives the solution's answer by the agent's answer protocol)
through the real agent loop, they make an episode whose tool results come from the toolset and
whose score comes from the task's verifier, like any rollout's.

Why: a small executor rarely succeeds on its own tasks (the 0.5B invents tools, repeats a call
whose result it has, or never answers), so rejection fine-tuning finds little to imitate. A
demonstration costs no sampling and shows exactly what the verifier rewards: the toolset's real
calls, their results read, and the answer given the way the protocol asks. Only demonstrations
that the verifier passes are trained on, so a solution whose answer came from computation the
episode does not show (or that needs more turns than the agent has) teaches nothing.
"""

from __future__ import annotations

import json
from typing import Any

from .agent import Agent
from .evaluate import episode_specs, score_episodes
from .sandbox import SandboxPool, Worker
from .task import CodeAsTask
from .toolcalls import ANSWER_PROTOCOLS, FINAL_ANSWER_TOOL, ToolCall, ToolCallFormat
from .tools import Toolset, ToolsetSpec
from .train import Sample, Shaper, shape


def answer_turn(value: Any, fmt: ToolCallFormat, protocol: str) -> str:
    """The turn that gives ``value`` as the final answer under ``protocol``."""
    if ANSWER_PROTOCOLS[protocol].tool:
        return fmt.render([ToolCall(FINAL_ANSWER_TOOL, {"answer": value})])
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"<answer>{text}</answer>" if protocol == "tag" else text


def script(task: CodeAsTask, toolset: Toolset, worker: Worker, agent: Agent) -> list[str] | None:
    """The turns that replay ``task``'s solution for ``agent``: each tool call the solution
    made on a fresh reset, then its answer; None when the toolset cannot reset, or the solution
    fails or calls no tool (a demonstration without a call shows nothing a tool-using agent
    needs)."""
    try:
        toolset.reset(task.seed)
    except Exception:  # a broken toolset is the task's problem, as in a rollout
        return None
    outcome = worker.run(task.solution, "solve", [], toolset)
    if not outcome.ok or not outcome.calls:
        return None
    turns = [agent.fmt.render([ToolCall(name, dict(args))]) for name, args in outcome.calls]
    return turns + [answer_turn(outcome.value, agent.fmt, agent.config.answer_protocol)]


def demonstrate(
    tasks: list[CodeAsTask],
    agent: Agent,
    pool: SandboxPool,
    shaper: Shaper,
    tools: ToolsetSpec | None = None,
) -> list[Sample]:
    """One scored demonstration per task whose solution runs and calls a tool, in task order.

    ``agent`` supplies the tokenizer, tool-call format, answer protocol and limits of the
    executor being trained; nothing is sampled from its model."""
    finished = []
    with pool.worker() as worker:
        for task, spec in episode_specs(tasks, 1, tools):
            try:
                turns = script(task, spec.toolset, worker, agent)
                if turns is not None:
                    finished.append((task, agent.replay(spec, turns)))
            finally:
                spec.toolset.close()
    scored = score_episodes(finished, pool)
    return [Sample(item, shape(item, shaper), demonstration=True) for item in scored]
