"""LangChainChatBackend: a LangChain chat model as sc's model, through the message codec.

The real ``explore`` and ``seeded`` challengers and sc's Agent run on the ``calculator`` toolset
with langchain-core's fake chat models (and a scripted chat model that answers by what it is
shown); a callback handler records the messages each call receives.
"""

from __future__ import annotations

import json
import textwrap
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from sc_langchain.backend import (
    END,
    RECORD,
    LangChainChatBackend,
    MessageCodec,
)

from sc_core.agent import Agent, AgentConfig, ChatRenderer, EpisodeSpec
from sc_core.challenge import (
    EXPLORE_PROMPT,
    WRITE_PREFIX,
    ChallengeConfig,
    cat_prompt,
)
from sc_core.default_plugins.challengers import WRITER_PROMPT, ExploreChallenger, SeededChallenger
from sc_core.errors import ScError
from sc_core.models import SamplingParams, load_model
from sc_core.toolcalls import FallbackFormat, detect_format
from sc_core.tools import load_toolset

TASK = textwrap.dedent(
    """\
    <instruction>What is 17 times 23?</instruction>
    <verify>
    def verify(state, answer):
        return answer == 391
    </verify>
    <solution>
    def solve(tools):
        return tools.multiply(a=17, b=23)
    </solution>
    <failure>
    def solve(tools):
        return tools.add(a=17, b=23)
    </failure>"""
)
CALL = '<tool_call>{"name": "multiply", "arguments": {"a": 6, "b": 7}}</tool_call>'
WRITE_MARK = "Now write one new task"


class Recorder(BaseCallbackHandler):
    """Records the messages every chat-model call receives, and its call arguments."""

    def __init__(self) -> None:
        self.calls: list[list[BaseMessage]] = []
        self.kwargs: list[dict[str, Any]] = []

    def on_chat_model_start(self, serialized, messages, **kwargs):
        self.calls.extend(messages)
        self.kwargs.append(kwargs.get("invocation_params") or {})


class Scripted(BaseChatModel):
    """Replies by what it is shown: a task when asked to write one, ``done`` after a tool
    result, else an exploration tool call. Thread-safe (batch runs calls in threads)."""

    task: str = "Here is a task.\n" + TASK
    call: str = CALL

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        last = messages[-1].content
        if WRITE_MARK in last:
            text = self.task
        elif "Tool result" in last:
            text = "<answer>done</answer>"
        else:
            text = self.call
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


@pytest.fixture
def calculator():
    return load_toolset("calculator")


def test_codec_round_trips_and_is_prefix_stable():
    codec = MessageCodec()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is 6 × 7?\n  Tabs\tand émoji 🙂."},
        {"role": "assistant", "content": CALL, "tool_calls": [{"function": {"name": "x"}}]},
        {"role": "tool", "name": "multiply", "content": "42"},
    ]
    text = codec.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = codec.apply_chat_template(messages, add_generation_prompt=True)
    assert codec.decode(ids) == text and codec(text)["input_ids"] == ids
    assert len(ids) < len(text) / 2  # words are single ids: budgets stay near real token counts
    assert text.endswith(f"{RECORD}assistant\x1f")
    records = MessageCodec.parse(text)
    assert [(r.role, r.name, r.closed) for r in records] == [
        ("system", None, True),
        ("user", None, True),
        ("assistant", None, True),
        ("tool", "multiply", True),
        ("assistant", None, False),
    ]
    assert records[1].content == messages[1]["content"] and records[-1].content == ""
    # what ChatRenderer.delta needs: earlier turns render the same later on
    renderer = ChatRenderer(codec, detect_format(codec))
    added = [{"role": "user", "content": "again"}]
    delta = renderer.delta(messages[:3], added, [], closed=True)
    assert codec.decode(delta) == f"{RECORD}user\x1fagain{END}{RECORD}assistant\x1f"
    # control characters in contents cannot break the records
    dirty = codec.apply_chat_template([{"role": "user", "content": "a\x1db\x1ec"}], tokenize=False)
    assert MessageCodec.parse(dirty)[0].content == "abc"


def test_codec_is_bounded_and_strict():
    codec = MessageCodec(max_pieces=2)
    ids = codec.encode("alpha beta gamma delta")
    assert codec.decode(ids) == "alpha beta gamma delta"
    assert len(codec) == 0x110000 + 2  # two pieces interned, the rest per character
    with pytest.raises(ValueError):
        codec.decode([0x110000 + 5])
    assert codec.decode(codec.encode("x") + [codec.eos_token_id], skip_special_tokens=True) == "x"


def test_the_codec_gets_the_fallback_format(calculator):
    backend = LangChainChatBackend(Scripted())
    assert isinstance(detect_format(backend.tokenizer), FallbackFormat)
    assert backend.tokenizer.eos_token == END and backend.name == "langchain"


def test_agent_runs_on_a_chat_model(calculator):
    recorder = Recorder()
    backend = LangChainChatBackend(Scripted(callbacks=[recorder]))
    agent = Agent(backend, AgentConfig(max_turns=4, temperature=0.3, answer_reminder=False))
    [episode] = agent.run([EpisodeSpec("Explore the tools.", calculator.create(), seed=1)])
    assert episode.finish == "answer" and episode.answer == "done"
    assert episode.tool_calls == 1 and not episode.invalid_turns
    assert episode.messages[2]["tool_calls"][0]["function"]["name"] == "multiply"
    assert episode.messages[3] == {"role": "tool", "name": "multiply", "content": "42"}
    # the token stream decodes to the conversation the agent holds
    stream = backend.tokenizer.decode(episode.prompt_ids + episode.completion_ids)
    rendered = backend.tokenizer.apply_chat_template(episode.messages, tokenize=False)
    assert stream == rendered
    first, second = recorder.calls
    assert [type(m) for m in first] == [SystemMessage, HumanMessage]
    assert "multiply: Multiply two numbers.\n  a (number, required)" in first[0].content  # tools
    assert "<tool_call>" in first[0].content and first[1].content == "Explore the tools."
    assert second[2:] == [AIMessage(CALL), HumanMessage("Tool result (multiply): 42")]
    assert recorder.kwargs[0]["temperature"] == 0.3
    assert recorder.kwargs[0]["max_tokens"] == 256


def test_explore_challenger(calculator):
    recorder = Recorder()
    backend = LangChainChatBackend(Scripted(callbacks=[recorder]))
    challenger = ExploreChallenger(backend, ChallengeConfig(explore_turns=3))
    lines = challenger.candidates(calculator, [1, 2])
    assert [line.error for line in lines] == [None, None]
    for line in lines:
        assert line.task is not None
        assert line.task.instruction == "What is 17 times 23?"
        assert line.task.provenance["raw"].startswith(WRITE_PREFIX + "What is 17")
        assert line.task.provenance["model"] == "Scripted:Scripted"
        exploration = line.task.provenance["exploration"]
        assert {"role": "tool", "name": "multiply", "content": "42"} in exploration
    writes = [call for call in recorder.calls if WRITE_MARK in call[-1].content]
    assert len(recorder.calls) == 6 and len(writes) == 2  # 2 x (call, answer, write)
    for seed, call in zip([1, 2], sorted(writes, key=lambda c: c[-1].content), strict=True):
        assert EXPLORE_PROMPT in call[0].content
        assert HumanMessage("Tool result (multiply): 42") in call  # the exploration's result
        assert call[-1].content.startswith(cat_prompt(calculator.create(), seed, example=True))
        assert call[-1].content.endswith("Begin your reply with <instruction>")


def test_seeded_challenger(calculator):
    recorder = Recorder()
    backend = LangChainChatBackend(Scripted(callbacks=[recorder]), max_concurrency=1)
    lines = SeededChallenger(backend, ChallengeConfig(shots=1)).candidates(calculator, [3, 4])
    assert all(line.task is not None for line in lines), [line.error for line in lines]
    assert len(recorder.calls) == 2
    for call in recorder.calls:
        system, request = call
        assert system.content.startswith(WRITER_PROMPT)
        assert request.content.startswith("Example tasks for these tools:\n\n<instruction>")
        assert "Write a new task, different from the examples." in request.content
    assert recorder.kwargs[0]["max_tokens"] == ChallengeConfig().max_new_tokens


def test_langchain_fake_chat_models_as_challengers(calculator):
    """langchain-core's own fakes: a fixed list of replies (one seed, so the order is known)."""
    recorder = Recorder()
    fake = GenericFakeChatModel(
        messages=iter([CALL, "<answer>done</answer>", TASK]), callbacks=[recorder]
    )
    [line] = ExploreChallenger(LangChainChatBackend(fake)).candidates(calculator, [7])
    assert line.task is not None and line.task.solution.startswith("def solve(tools):")
    assert recorder.calls[1][-1] == HumanMessage("Tool result (multiply): 42")
    assert cat_prompt(calculator.create(), 7, example=True) in recorder.calls[2][-1].content
    # a model that writes only the continuation of "<instruction>"
    fake = FakeListChatModel(responses=[TASK.removeprefix(WRITE_PREFIX)])
    [line] = SeededChallenger(LangChainChatBackend(fake)).candidates(calculator, [7])
    assert line.task is not None and line.task.instruction == "What is 17 times 23?"


def test_prefill_as_a_message():
    recorder = Recorder()
    fake = FakeListChatModel(responses=["Paris.</instruction>"], callbacks=[recorder])
    backend = LangChainChatBackend(fake, prefill="message", forward_sampling=False)
    codec = backend.tokenizer
    prompt = codec.apply_chat_template(
        [{"role": "user", "content": "Ask."}], add_generation_prompt=True
    )
    [generation] = backend.generate([prompt + codec.encode(WRITE_PREFIX)], SamplingParams())
    assert recorder.calls[0] == [HumanMessage("Ask."), AIMessage(WRITE_PREFIX)]
    assert "temperature" not in recorder.kwargs[0]
    assert generation.text == "Paris.</instruction>" and generation.finish_reason == "stop"
    assert generation.token_ids[-1] == codec.eos_token_id
    assert codec.decode(generation.token_ids) == generation.text + END


def test_replies_with_native_tool_calls_truncation_and_failures():
    native = AIMessage("", tool_calls=[{"name": "add", "args": {"a": 1}, "id": "c1"}])
    cut = AIMessage("half a tur", response_metadata={"finish_reason": "length"})
    backend = LangChainChatBackend(GenericFakeChatModel(messages=iter([native, cut])))
    prompt = backend.tokenizer.apply_chat_template(
        [{"role": "user", "content": "Go."}], add_generation_prompt=True
    )
    first = backend.generate([prompt], SamplingParams())[0]
    assert first.text == '<tool_call>{"name": "add", "arguments": {"a": 1}}</tool_call>'
    second = backend.generate([prompt], SamplingParams())[0]
    assert second.finish_reason == "length" and second.token_ids[-1] != END
    # every call failing is an error; one failing is an empty turn
    with pytest.raises(ScError, match="the chat model failed"):
        backend.generate([prompt], SamplingParams())  # the iterator is exhausted

    class OneFails(Scripted):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if "fail" in messages[-1].content:
                raise RuntimeError("boom")
            return super()._generate(messages, stop, run_manager, **kwargs)

    backend = LangChainChatBackend(OneFails())
    codec = backend.tokenizer
    prompts = [
        codec.apply_chat_template([{"role": "user", "content": c}], add_generation_prompt=True)
        for c in ("fail", "ok")
    ]
    bad, good = backend.generate(prompts, SamplingParams())
    assert bad.text == "" and good.text == CALL
    with pytest.raises(ScError, match="cannot constrain"):
        backend.generate(prompts, SamplingParams(regex="x"))


def make_chat() -> BaseChatModel:
    """A factory the spec tests name as ``<this file>:make_chat``."""
    return FakeListChatModel(responses=["<answer>1</answer>"])


def test_langchain_model_spec():
    backend = load_model(f"langchain:{__file__}:make_chat")
    assert isinstance(backend, LangChainChatBackend)
    assert isinstance(backend.chat_model, FakeListChatModel)
    with pytest.raises(ScError, match="cannot load the chat model"):
        LangChainChatBackend("no_such_module_xyz:chat")
    with pytest.raises(ScError, match="not a chat model"):
        LangChainChatBackend(f"{__file__}:TASK")


def test_tool_results_are_grouped_for_the_model():
    backend = LangChainChatBackend(Scripted())
    codec = backend.tokenizer
    prompt = codec.apply_chat_template(
        [
            {"role": "user", "content": "Go."},
            {"role": "assistant", "content": CALL + CALL},
            {"role": "tool", "name": "multiply", "content": "42"},
            {"role": "tool", "name": "multiply", "content": "error: boom"},
            {"role": "user", "content": "Call a tool or give the final answer."},
        ],
        add_generation_prompt=True,
    )
    messages, prefix = backend.conversation(prompt)
    assert prefix == ""
    assert messages == [
        HumanMessage("Go."),
        AIMessage(CALL + CALL),
        HumanMessage("Tool result (multiply): 42\n\nTool result (multiply): error: boom"),
        HumanMessage("Call a tool or give the final answer."),
    ]
    assert json.loads(json.dumps(backend.call_arguments(SamplingParams(top_p=0.5)))) == {
        "temperature": 0.7,
        "max_tokens": 256,
        "top_p": 0.5,
    }
