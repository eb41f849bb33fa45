"""sc embedded in a LangChain application, end to end, through the Python API (sc_core.api):

the application's own LangChain tools → a LangChain chat model writes tasks (challenge) → sc
trains the embedded model on them (rft) → sc evaluates the checkpoint → the checkpoint, as a
LangChain chat model, runs in a real LangChain agent with the same tools.

The challenger is a scripted LangChain chat model (no strong model is reachable offline); the
executor, the training and the agent run the real embedded SmolLM2-135M-Instruct.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from sc_langchain import LangChainChatBackend, SCChatModel, toolset_spec

from sc_core import api
from sc_core.agent import AgentConfig

pytest.importorskip(
    "sc_trl", reason="the training step needs sc-trl (pip install -e plugins/sc-trl)"
)


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


TASK = """<instruction>What is {a} times {b}? Use the tools.</instruction>
<verify>
def verify(state, answer):
    return answer == {product}
</verify>
<solution>
def solve(tools):
    return tools.multiply(a={a}, b={b})
</solution>
<failure>
def solve(tools):
    return tools.add(a={a}, b={b})
</failure>"""


class TaskWriter(BaseChatModel):
    """Stands in for a strong challenger behind an API: explores with one tool call, then
    writes a different, valid task each time it is asked for one."""

    numbers: itertools.count = itertools.count(3)

    @property
    def _llm_type(self) -> str:
        return "task-writer"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        last = messages[-1].content
        if "Tool result" in last:
            text = "<answer>explored</answer>"
        elif "Now write one new task" in last:  # sc's request for a Code-as-Task
            a = next(self.numbers)
            text = TASK.format(a=a, b=a + 1, product=a * (a + 1))
        else:
            text = '<tool_call>{"name": "multiply", "arguments": {"a": 2, "b": 5}}</tool_call>'
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


@pytest.fixture
def one_thread():
    """One torch thread: on a busy two-core machine two threads are several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_challenge_train_evaluate_and_swap_into_a_langchain_agent(tmp_path, one_thread):
    tools = toolset_spec([multiply, add], name="arith")
    limits = AgentConfig(max_turns=2, max_new_tokens=24, temperature=0.7)
    with api.open_pool(workers=1) as pool:
        result = api.challenge(
            tools, 3, LangChainChatBackend(TaskWriter()), strategy="explore", pool=pool
        )
        assert result.to_dict()["attempts"] == 3
        assert len(result.kept) == 3, result.rejected
        assert all(task.toolset == "langchain:arith" for task in result.kept)

        metrics = []
        checkpoint = api.train(
            result.kept,
            tmp_path / "checkpoint",
            tools,
            "smollm2",
            backend="rft",
            # min_reward 0 keeps every episode, so the step really trains on this tiny set
            options={"k": "2", "min_reward": "0", "batch_size": "2", "learning_rate": "1e-4"},
            agent=limits,
            pool=pool,
            on_metrics=metrics.append,
        )
        assert (checkpoint / "config.json").is_file()
        assert any("loss" in row for row in metrics)

        report = api.evaluate(result.kept, tools, str(checkpoint), k=2, agent=limits, pool=pool)
        summary = report.to_dict()
        assert len(summary["tasks"]) == 3 and all(row["n"] == 2 for row in summary["tasks"])
        assert 0 <= summary["pass_at_1"] <= summary["pass_at_k"] <= 1

    from langchain.agents import create_agent
    from langchain.agents.middleware import ModelCallLimitMiddleware

    chat = SCChatModel(str(checkpoint), max_tokens=24, temperature=0)
    agent = create_agent(
        chat,
        [multiply, add],
        middleware=[ModelCallLimitMiddleware(run_limit=3, exit_behavior="end")],
    )
    state = agent.invoke({"messages": [("user", "What is 6 times 7?")]}, {"recursion_limit": 10})
    replies = [m for m in state["messages"][1:] if isinstance(m, AIMessage)]
    assert replies and "sc_text" in replies[0].additional_kwargs  # written by the checkpoint
