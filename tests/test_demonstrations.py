"""Demonstrations (sc_core.demonstrations): a task's example solution replayed as an episode.

The formats' ``render`` must write calls their own ``parse`` reads back; the replay runs in the
real agent loop with the real SmolLM2 tokenizer, on the real toolsets, scored by the tasks' own
verifiers in the real sandbox.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from sc_core.agent import Agent, AgentConfig
from sc_core.default_plugins import seed_examples
from sc_core.demonstrations import answer_turn, demonstrate
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import CodeAsTask
from sc_core.toolcalls import (
    FINAL_ANSWER_TOOL,
    FallbackFormat,
    HermesFormat,
    Llama3JsonFormat,
    PythonicFormat,
    ToolCall,
)
from sc_core.train import get_shaper

FORMATS = [HermesFormat(), Llama3JsonFormat(), PythonicFormat(), FallbackFormat()]
CALLS = [
    ToolCall("find_customer", {"email": "zoë@example.com", "active": True, "limit": None}),
    ToolCall("add", {"a": 1.5, "b": -2, "tags": ["x", {"y": [1, 2]}]}),
    ToolCall("now", {}),
]


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
def test_a_rendered_turn_parses_back_to_the_same_calls(fmt):
    names = {call.name for call in CALLS}
    for calls in ([CALLS[0]], CALLS):
        parsed = fmt.parse(fmt.render(calls), tool_names=names)
        assert parsed.error is None and not parsed.has_answer
        assert parsed.tool_calls == calls


@pytest.mark.parametrize("fmt", FORMATS, ids=lambda fmt: fmt.name)
@pytest.mark.parametrize("protocol", ["tool", "tag", "plain"])
@pytest.mark.parametrize("value", [1624, 21.15, "O1005", ["a", "b"]])
def test_the_answer_turn_gives_the_value_under_each_protocol(fmt, protocol, value):
    parsed = fmt.parse(answer_turn(value, fmt, protocol), tool_names={"add", FINAL_ANSWER_TOOL})
    assert parsed.error is None
    if protocol == "tool":
        assert parsed.tool_calls == [ToolCall(FINAL_ANSWER_TOOL, {"answer": value})]
    else:
        assert parsed.has_answer and parsed.answer == value


MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
needs_tokenizer = pytest.mark.skipif(
    not (MODEL_DIR / "tokenizer.json").is_file(),
    reason=f"the converted SmolLM2 tokenizer is missing at {MODEL_DIR}",
)


class TokenizerOnly:
    """What a demonstration needs of the executor's model: its tokenizer. Nothing is sampled,
    so ``generate`` is never reached."""

    def __init__(self):
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(MODEL_DIR)

    def generate_continuously(self, requests, then):
        raise AssertionError("a demonstration sampled from the model")


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(get_sandbox(None), Limits(), 1) as pool:
        yield pool


def seeds(toolset: str) -> list[CodeAsTask]:
    return [CodeAsTask.from_dict(row) for row in seed_examples(toolset)]


@needs_tokenizer
@pytest.mark.parametrize("toolset", ["calculator", "shop"])
def test_each_solution_replays_as_an_episode_its_verifier_passes(toolset, pool):
    agent = Agent(TokenizerOnly(), AgentConfig(max_turns=8))
    tasks = seeds(toolset)
    samples = demonstrate(tasks, agent, pool, get_shaper(None))

    assert [sample.scored.task_id for sample in samples] == [task.id for task in tasks]
    for sample in samples:
        episode = sample.episode
        assert sample.reward == 1.0 and sample.scored.passed, sample.scored.error
        assert sample.demonstration
        assert episode.finish == "answer" and episode.has_answer and not episode.invalid_turns
        calls = [m for m in episode.messages if m["role"] == "assistant"]
        assert calls[-1]["tool_calls"][0]["function"]["name"] == FINAL_ANSWER_TOOL
        assert episode.tool_calls == len(calls) - 1 >= 1  # one toolset call per turn before it
        # the model's tokens are the turns as written, each closed with the end-of-turn token
        pairs = zip(episode.completion_ids, episode.completion_mask, strict=True)
        written = [token for token, keep in pairs if keep]
        text = agent.model.tokenizer.decode(written)
        assert text.count(agent.renderer.end_of_turn) == len(calls)
        assert all(turn["content"] in text for turn in calls)


@needs_tokenizer
def test_solutions_that_fail_or_call_no_tool_give_no_demonstration(pool):
    base = seeds("calculator")[0]
    failing = replace(base, id="fails", solution="def solve(tools):\n    return 1 / 0\n")
    toolless = replace(base, id="toolless", solution="def solve(tools):\n    return 90.0\n")
    agent = Agent(TokenizerOnly(), AgentConfig())
    samples = demonstrate([failing, toolless, base], agent, pool, get_shaper(None))
    assert [sample.scored.task_id for sample in samples] == [base.id]


@needs_tokenizer
def test_a_solution_longer_than_the_turn_limit_is_a_failed_demonstration(pool):
    task = next(task for task in seeds("shop") if task.solution.count("tools.") >= 2)
    agent = Agent(TokenizerOnly(), AgentConfig(max_turns=2))
    (sample,) = demonstrate([task], agent, pool, get_shaper(None))
    assert sample.episode.finish == "max_turns" and not sample.episode.has_answer
    assert sample.reward == 0.0


@needs_tokenizer
def test_a_toolset_that_cannot_start_gives_no_demonstration(pool):
    from sc_core.tools import ToolsetSpec

    def broken():
        raise RuntimeError("no database")

    agent = Agent(TokenizerOnly(), AgentConfig())
    tools = ToolsetSpec("calculator", factory=broken)
    assert demonstrate(seeds("calculator"), agent, pool, get_shaper(None), tools) == []
