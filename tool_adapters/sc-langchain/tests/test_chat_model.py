"""SCChatModel: an sc model as a LangChain chat model, in real LangChain agent loops.

A scripted sc backend (the real SmolLM2 tokenizer and chat template, replies from a script)
makes the tool path exact: the prompts LangChain's ``create_agent`` produces are token for token
those of sc's own Agent. One test runs the real embedded SmolLM2-135M in ``create_agent``
(mechanics only: a 135M model rarely calls tools right).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelCallLimitMiddleware, wrap_model_call
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from pydantic import BaseModel, Field
from sc_langchain import SCChatModel
from sc_langchain.adapter import langchain_toolset
from sc_langchain.chat_model import SC_TEXT, forced_prefix

from sc_core.agent import SYSTEM_PROMPT, Agent, AgentConfig, EpisodeSpec
from sc_core.errors import ScError
from sc_core.models import Generation, ModelBackend, cache_dir, resolve_model
from sc_core.toolcalls import FallbackFormat, Llama3JsonFormat, PythonicFormat

MODEL_DIR = cache_dir() / "models" / "SmolLM2-135M-Instruct"
if not (MODEL_DIR / "tokenizer.json").is_file():
    try:
        resolve_model("smollm2")
    except Exception as error:  # no embedded model and no hub access
        pytest.skip(f"the SmolLM2 checkpoint is unavailable: {error}", allow_module_level=True)

from transformers import AutoTokenizer  # noqa: E402  (after the skip: slow import)

TOKENIZER = AutoTokenizer.from_pretrained(MODEL_DIR)
CALL = '<tool_call>{"name": "add", "arguments": {"a": 2, "b": 3}}</tool_call>'
ADDED: list[tuple[int, int]] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    ADDED.append((a, b))
    return a + b


class Scripted(ModelBackend):
    """Replies from a list of texts (the last repeats); records every prompt's token ids."""

    name = "scripted"

    def __init__(self, *replies: str):
        super().__init__("scripted-model")
        self.replies = list(replies)
        self.prompts: list[list[int]] = []
        self.params = []

    @property
    def tokenizer(self):
        return TOKENIZER

    def generate(self, prompts, params):
        self.params.append(params)
        out = []
        for prompt in prompts:
            self.prompts.append(list(prompt))
            reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
            ids = TOKENIZER(reply, add_special_tokens=False)["input_ids"]
            out.append(Generation(ids + [TOKENIZER.eos_token_id], reply, None, "stop"))
        return out


@pytest.fixture(autouse=True)
def _clear():
    ADDED.clear()


def text(ids: list[int]) -> str:
    return TOKENIZER.decode(ids)


def test_create_agent_sees_what_sc_agent_shows(tmp_path: Path):
    """The same turns through sc's Agent and through LangChain's create_agent: identical
    prompt tokens at every step, the tool really runs, the answer is the content."""
    module = tmp_path / "lc_add_tool.py"
    module.write_text(
        "from langchain_core.tools import tool\n\n\n@tool\ndef add(a: int, b: int) -> int:\n"
        '    """Add two integers."""\n    return a + b\n'
    )
    sc_backend = Scripted(CALL, "I added them. <answer>5</answer>")
    toolset = langchain_toolset(f"{module}:add")()
    # SCChatModel speaks the tag protocol, without reminders: LangChain's loop ends on a turn
    # without tool calls, and its tools are LangChain's alone
    config = AgentConfig(temperature=0, answer_protocol="tag", answer_reminder=False)
    [episode] = Agent(sc_backend, config).run([EpisodeSpec("What is 2 + 3?", toolset)])
    assert episode.finish == "answer" and episode.answer == 5

    backend = Scripted(CALL, "I added them. <answer>5</answer>")
    model = SCChatModel(backend, temperature=0)
    result = create_agent(model, [add]).invoke({"messages": [HumanMessage("What is 2 + 3?")]})
    human, call, result_message, answer = result["messages"]
    assert isinstance(call, AIMessage) and call.content == ""
    [parsed] = call.tool_calls
    assert parsed["name"] == "add" and parsed["args"] == {"a": 2, "b": 3}
    assert parsed["id"].startswith("call_") and call.additional_kwargs[SC_TEXT] == CALL
    assert ADDED == [(2, 3)]
    assert isinstance(result_message, ToolMessage) and result_message.content == "5"
    assert result_message.tool_call_id == parsed["id"]
    assert isinstance(answer, AIMessage) and answer.content == "5" and not answer.tool_calls
    assert answer.usage_metadata["input_tokens"] == len(backend.prompts[1])
    # token for token what sc's agent gave the model
    assert backend.prompts == sc_backend.prompts
    first = text(backend.prompts[0])
    assert first.startswith(f"<|im_start|>system\n{SYSTEM_PROMPT}\n\nYou can use these tools:\n")
    assert "add: Add two integers.\n  a (integer, required)\n  b (integer, required)" in first
    assert text(backend.prompts[1]).endswith(
        f"{CALL}<|im_end|>\n<|im_start|>tool\n5<|im_end|>\n<|im_start|>assistant\n"
    )
    assert backend.params[0].temperature == 0 and backend.params[0].max_new_tokens == 256


class Multiply(BaseModel):
    """Multiply two numbers."""

    a: float = Field(description="first factor")
    b: float


DIVIDE = {
    "type": "function",
    "function": {
        "name": "divide",
        "description": "Divide a by b.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
            "required": ["a", "b"],
        },
    },
}


def test_manual_loop_with_every_kind_of_tool():
    backend = Scripted(
        '<tool_call>{"name": "Multiply", "arguments": {"a": 6, "b": 7}}</tool_call>\n'
        '<tool_call>{"name": "divide", "arguments": {"a": 1, "b": 4}}</tool_call>',
        "<answer>[42, 0.25]</answer>",
    )
    model = SCChatModel(backend, max_tokens=48).bind_tools([add, Multiply, DIVIDE])
    messages = [SystemMessage("You are a calculator."), HumanMessage("6*7 and 1/4?")]
    run = {"Multiply": lambda a, b: a * b, "divide": lambda a, b: a / b}
    for _ in range(3):
        reply = model.invoke(messages)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for call in reply.tool_calls:
            value = run[call["name"]](**call["args"])
            messages.append(ToolMessage(json.dumps(value), tool_call_id=call["id"]))
    assert [type(m).__name__ for m in messages] == [
        "SystemMessage",
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "AIMessage",
    ]
    assert messages[-1].content == "[42, 0.25]"
    last = text(backend.prompts[-1])
    assert last.startswith("<|im_start|>system\nYou are a calculator.\n\nYou can use these tools:")
    assert "Multiply: Multiply two numbers.\n  a (number, required): first factor\n" in last
    assert "divide: Divide a by b.\n  a (number, required)\n  b (number, required)" in last
    # tool messages are named from their call, rendered as sc renders results
    assert "<|im_start|>tool\n42<|im_end|>\n<|im_start|>tool\n0.25<|im_end|>" in last
    assert backend.params[0].max_new_tokens == 48


@pytest.mark.parametrize(
    "garbage",
    [
        '<tool_call>{"name": "add", "arguments": {"a": 2,</tool_call>',
        "<tool_call></tool_call>",
        "",
        "\x00\ufffd<|im_start|>}}{{ <answer",
        "x" * 5000,
    ],
)
def test_garbage_turns_are_plain_messages(garbage):
    model = SCChatModel(Scripted(garbage)).bind_tools([add])
    reply = model.invoke("What is 2 + 3?")
    assert isinstance(reply, AIMessage) and not reply.tool_calls
    assert reply.additional_kwargs[SC_TEXT] == garbage
    if "<tool_call>" in garbage:
        assert reply.content == garbage.strip()
        assert reply.response_metadata["sc_error"]
        assert reply.invalid_tool_calls[0]["error"] == reply.response_metadata["sc_error"]
    # and the loop goes on: the garbage turn renders as the model wrote it
    model.invoke(["What is 2 + 3?", reply, "Try again."])
    assert ADDED == []


def test_history_from_elsewhere_and_tool_errors():
    """AIMessages this model did not write have their calls written in its format; a failed
    tool's message is sc's ``error: ...``; without tools, system messages pass unchanged."""
    backend = Scripted("Fine.")
    model = SCChatModel(backend)
    history = [
        HumanMessage("Add 2 and 3."),
        AIMessage("Adding.", tool_calls=[{"name": "add", "args": {"a": 2, "b": 3}, "id": "x1"}]),
        ToolMessage("Error: boom", tool_call_id="x1", status="error"),
        HumanMessage("And now?"),
    ]
    reply = model.bind_tools([add]).invoke(history)
    assert reply.content == "Fine." and not reply.tool_calls
    prompt = text(backend.prompts[0])
    assert f"<|im_start|>assistant\nAdding.\n{CALL}<|im_end|>" in prompt
    assert "<|im_start|>tool\nerror: boom<|im_end|>" in prompt
    plain = model.invoke([SystemMessage("Be nice."), HumanMessage("Hi")])
    assert plain.content == "Fine."
    assert text(backend.prompts[1]) == (
        "<|im_start|>system\nBe nice.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_options_batch_and_stop():
    backend = Scripted("Paris. The end.")
    model = SCChatModel(backend, temperature=0.2, seed=3)
    assert model.model == "scripted-model" and model._llm_type == "sc"
    replies = model.batch(["a?", "b?", "c?"])
    assert [r.content for r in replies] == ["Paris. The end."] * 3
    assert model.invoke("a?", stop=[" The"]).content == "Paris."
    assert model.invoke("a?", max_tokens=5).usage_metadata["output_tokens"] > 0
    assert backend.params[-1].max_new_tokens == 5 and backend.params[0].seed == 3
    lazy = SCChatModel("no/such/model-dir")  # loads on first use, not when built
    assert lazy.model == "no/such/model-dir" and lazy.backend is None
    hermes = SCChatModel(Scripted('<tool_call>{"name": "add", "arguments": {"a": 1, "b": 1}}'))
    hermes.tool_format = "hermes"
    assert hermes.format.native and hermes.bind_tools([add]).invoke("1+1?").tool_calls
    with pytest.raises(ScError, match="unknown tool format"):
        SCChatModel(backend, tool_format="nope").invoke("x")


def test_forced_tool_choice_starts_the_call():
    backend = Scripted('"a": 2, "b": 3}}</tool_call>', "<answer>5</answer>")
    model = SCChatModel(backend)
    reply = model.bind_tools([add], tool_choice="add").invoke("What is 2 + 3?")
    assert reply.tool_calls[0]["args"] == {"a": 2, "b": 3}
    assert reply.additional_kwargs[SC_TEXT] == CALL
    assert text(backend.prompts[0]).endswith(
        '<|im_start|>assistant\n<tool_call>{"name": "add", "arguments": {'
    )
    assert forced_prefix(FallbackFormat(), "any", [DIVIDE]) == "<tool_call>"
    assert forced_prefix(FallbackFormat(), {"function": {"name": "divide"}}, [DIVIDE]).endswith(
        '"divide", "arguments": {'
    )
    assert forced_prefix(PythonicFormat(), "divide", [DIVIDE]) == "[divide("
    assert forced_prefix(Llama3JsonFormat(), "required", [DIVIDE]) == '{"name": "'
    assert forced_prefix(FallbackFormat(), "auto", [DIVIDE]) == ""
    # later turns show the model its whole turn, prefix included
    follow = model.bind_tools([add]).invoke(
        ["What is 2 + 3?", reply, ToolMessage("5", tool_call_id=reply.tool_calls[0]["id"])]
    )
    assert follow.content == "5"
    assert f"assistant\n{CALL}<|im_end|>\n<|im_start|>tool\n5<|im_end|>" in text(backend.prompts[1])


@wrap_model_call
def call_a_tool_first(request, handler):
    """Until a tool has answered, the model must call one (tool_choice="any")."""
    if not any(isinstance(message, ToolMessage) for message in request.messages):
        request = request.override(tool_choice="any")
    return handler(request)


@pytest.fixture
def one_thread():
    """One torch thread: on a busy 2-core machine two threads spin against each other (a
    32-token turn took 30-50 s instead of 3 s)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_real_model_in_create_agent(one_thread):
    """The embedded SmolLM2-135M in LangChain's create_agent (two model calls at most): its
    first turn must call a tool (``tool_choice="any"`` starts the turn with ``<tool_call>``);
    a call that parses runs the real tool and its ToolMessage goes back to the model; the loop
    ends with an AIMessage. Mechanics only: the arguments may well be wrong."""
    model = SCChatModel("smollm2", temperature=0, max_tokens=32)
    agent = create_agent(
        model,
        [add],
        middleware=[call_a_tool_first, ModelCallLimitMiddleware(run_limit=2, exit_behavior="end")],
    )
    result = agent.invoke({"messages": [HumanMessage("What is 12 + 30?")]}, {"recursion_limit": 10})
    new = result["messages"][1:]
    first = new[0]
    assert isinstance(first, AIMessage)
    assert first.additional_kwargs[SC_TEXT].startswith("<tool_call>")
    assert first.tool_calls or first.invalid_tool_calls  # parsed, or reported as a broken call
    produced = [m for m in new if isinstance(m, AIMessage) and SC_TEXT in m.additional_kwargs]
    results = {m.tool_call_id: m for m in new if isinstance(m, ToolMessage)}
    valid = []
    for message in produced:
        for call in message.tool_calls:
            assert call["id"] in results  # the tool node answered it
            if results[call["id"]].status != "error":
                valid.append(call["args"])
                assert results[call["id"]].content == str(call["args"]["a"] + call["args"]["b"])
    assert len(ADDED) == len(valid)  # every valid call really ran the tool
    assert isinstance(new[-1], AIMessage)
    assert 1 <= len(produced) <= 2
