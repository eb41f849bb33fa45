"""The multi-turn tool-calling loop (sc_core.agent) on a scripted backend.

The backend is fake but its tokenizer is the real SmolLM2 one (its chat template, its special
tokens), so the token-level contract is checked for real: token ids are kept as generated, the
tool results and template glue between turns are masked out, and the episode's tokens decode to
the chat template's rendering of its messages.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sc_core.agent import Agent, AgentConfig, EpisodeSpec
from sc_core.models import Generation, ModelBackend, SamplingParams
from sc_core.toolcalls import HermesFormat
from sc_core.tools import Tool, ToolError, Toolset, load_toolset

MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
if not (MODEL_DIR / "tokenizer.json").is_file():
    pytest.skip(
        f"the converted SmolLM2 tokenizer is missing at {MODEL_DIR} (run `sc models` or load "
        "the smollm2 model once to create it)",
        allow_module_level=True,
    )

from transformers import AutoTokenizer  # noqa: E402  (after the skip: slow import)

TOKENIZER = AutoTokenizer.from_pretrained(MODEL_DIR)
EOS = TOKENIZER.eos_token_id
ASSISTANT = "<|im_start|>assistant\n"


class Scripted(ModelBackend):
    """A backend that replies from a script: ``script(prompt_text) -> reply text``.

    A reply that does not fit max_new_tokens (with its end-of-turn token) is cut there and
    finishes with ``length``, as a real model's would. Every call is recorded.
    """

    name = "scripted"

    def __init__(self, script, model: str = "scripted-model"):
        super().__init__(model)
        self.script = script
        self.calls: list[tuple[list[list[int]], SamplingParams]] = []
        self.generated: list[list[int]] = []

    @property
    def tokenizer(self):
        return TOKENIZER

    def generate(self, prompts, params):
        self.calls.append(([list(p) for p in prompts], params))
        out = []
        for prompt in prompts:
            text = self.script(TOKENIZER.decode(prompt))
            ids = TOKENIZER(text, add_special_tokens=False)["input_ids"]
            if len(ids) + 1 > params.max_new_tokens:
                ids = ids[: params.max_new_tokens]
                generation = Generation(ids, TOKENIZER.decode(ids), None, "length")
            else:
                generation = Generation(ids + [EOS], text, None, "stop")
            self.generated.append(generation.token_ids)
            out.append(generation)
        return out


def mechanics(**settings) -> AgentConfig:
    """The loop's mechanics alone: the ``tag`` answer protocol, no reminders in tool results
    (the protocols are tested on their own below)."""
    return AgentConfig(answer_protocol="tag", answer_reminder=False, **settings)


def by_turn(*turns: str):
    """A script replying with ``turns[i]`` on the i-th assistant turn (the last one repeats)."""

    def script(prompt: str) -> str:
        index = prompt.count(ASSISTANT) - 1
        return turns[min(index, len(turns) - 1)]

    return script


def by_instruction(scripts: dict[str, tuple[str, ...]]):
    """One ``by_turn`` script per instruction, found in the prompt's user message."""

    def script(prompt: str) -> str:
        for instruction, turns in scripts.items():
            if f"<|im_start|>user\n{instruction}<|im_end|>" in prompt:
                return by_turn(*turns)(prompt)
        raise AssertionError(f"no script for prompt ending {prompt[-200:]!r}")

    return script


def call(name: str, **arguments) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments})}</tool_call>"


def spans(episode) -> list[tuple[int, list[int]]]:
    """The completion as runs of (mask, token ids)."""
    runs: list[tuple[int, list[int]]] = []
    for token, mask in zip(episode.completion_ids, episode.completion_mask, strict=True):
        if runs and runs[-1][0] == mask:
            runs[-1][1].append(token)
        else:
            runs.append((mask, [token]))
    return runs


@pytest.fixture(scope="module")
def calculator():
    return load_toolset("calculator")


def explode(x: int) -> int:
    """Fail on purpose.

    Args:
        x: Any number.
    """
    raise RuntimeError(f"boom {x}")


def refuse(x: int) -> int:
    """Refuse on purpose.

    Args:
        x: Any number.
    """
    raise ToolError("not today")


def echo(text: str) -> str:
    """Return the text.

    Args:
        text: What to echo.
    """
    return text


def small_toolset(**kwargs) -> Toolset:
    return Toolset([Tool.from_function(fn) for fn in (echo, explode, refuse)], **kwargs)


def run_one(script, instruction="What is 2 + 3?", toolset=None, **config):
    backend = Scripted(script)
    config.setdefault("temperature", 0.0)
    agent = Agent(backend, mechanics(**config))
    [episode] = agent.run(
        [EpisodeSpec(instruction, toolset or load_toolset("calculator").create())]
    )
    return backend, agent, episode


# -- one episode ---------------------------------------------------------------------------------


def test_calculator_episode_calls_add_then_answers():
    backend, _, episode = run_one(by_turn(call("add", a=2, b=3), "<answer>5</answer>"))
    assert episode.finish == "answer"
    assert episode.has_answer and episode.answer == 5 and isinstance(episode.answer, int)
    assert episode.tool_calls == 1 and episode.turns == 2
    assert episode.invalid_turns == [] and episode.error is None
    assert [m["role"] for m in episode.messages] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    assert episode.messages[2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": {"a": 2, "b": 3},
    }
    assert episode.messages[3] == {"role": "tool", "name": "add", "content": "5"}
    assert episode.state == {}  # the calculator is stateless
    assert len(backend.calls) == 2


def test_a_bare_json_call_in_hermes_format_is_executed():
    # Qwen2.5 models are hermes-native and often drop the <tool_call> tags (a real turn)
    bare = '{"name": "add", "arguments": {"a": 348, "b": 1276}}'
    backend = Scripted(by_turn(bare, "<answer>1624</answer>"))
    agent = Agent(backend, mechanics(temperature=0.0), fmt=HermesFormat())
    toolset = load_toolset("calculator").create()
    [episode] = agent.run([EpisodeSpec("What is 348 + 1276?", toolset)])
    assert episode.finish == "answer" and episode.answer == 1624
    assert episode.invalid_turns == [] and episode.tool_calls == 1 and episode.turns == 2
    assert episode.messages[2]["tool_calls"][0]["function"] == {
        "name": "add",
        "arguments": {"a": 348, "b": 1276},
    }
    assert episode.messages[3] == {"role": "tool", "name": "add", "content": "1624"}
    # the model read the result, in the prompt of its next turn
    assert "<|im_start|>tool\n1624<|im_end|>" in TOKENIZER.decode(backend.calls[1][0][0])


def test_token_ids_are_kept_and_tool_results_masked():
    turns = (call("add", a=2, b=3), "<answer>5</answer>")
    backend, agent, episode = run_one(by_turn(*turns))
    renderer = agent.renderer

    # the prompt is exactly the chat template's rendering of system + user
    prompt_text = renderer.text(episode.messages[:2], [], generation_prompt=True)
    assert episode.prompt_ids == TOKENIZER(prompt_text, add_special_tokens=False)["input_ids"]
    assert backend.calls[0][0] == [episode.prompt_ids]

    # completion = generated (1), tool result and glue (0), generated (1)
    runs = spans(episode)
    assert [mask for mask, _ in runs] == [1, 0, 1]
    assert [ids for mask, ids in runs if mask == 1] == backend.generated
    assert runs[0][1][-1] == EOS and runs[2][1][-1] == EOS
    assert TOKENIZER.decode(runs[0][1]) == turns[0] + "<|im_end|>"
    assert TOKENIZER.decode(runs[2][1]) == turns[1] + "<|im_end|>"
    glue = TOKENIZER.decode(runs[1][1])
    assert glue == "\n<|im_start|>tool\n5<|im_end|>\n" + ASSISTANT
    assert len(episode.logprobs) == len(episode.completion_ids)
    masked = zip(episode.logprobs, episode.completion_mask, strict=True)
    assert all(lp == 0.0 for lp, m in masked if m == 0)

    # the second call saw the whole episode so far, token for token
    first_turn = len(runs[0][1]) + len(runs[1][1])
    assert backend.calls[1][0] == [episode.prompt_ids + episode.completion_ids[:first_turn]]

    # no re-tokenising: the tokens decode to the template's rendering of the final messages
    whole = TOKENIZER.decode(episode.prompt_ids + episode.completion_ids)
    rendered = renderer.text(episode.messages, [], generation_prompt=False)
    assert rendered == whole + "\n"  # the template adds a newline after the last <|im_end|>


def test_malformed_tool_call_is_an_invalid_turn_and_the_loop_goes_on():
    garbage = '<tool_call>{"name": "add", "arguments": {"a": 1,</tool_call>'
    backend, agent, episode = run_one(by_turn(garbage, call("add", a=1, b=1), "<answer>2</answer>"))
    assert episode.finish == "answer" and episode.answer == 2
    assert len(episode.invalid_turns) == 1 and "malformed" in episode.invalid_turns[0]
    assert episode.tool_calls == 1 and episode.turns == 3
    feedback = episode.messages[3]
    assert feedback["role"] == "user"
    assert feedback["content"].startswith("Your last turn could not be understood")
    assert episode.invalid_turns[0] in feedback["content"]
    # the model read the feedback, as masked tokens
    assert feedback["content"] in TOKENIZER.decode(backend.calls[1][0][0])
    assert [mask for mask, _ in spans(episode)] == [1, 0, 1, 0, 1]
    whole = TOKENIZER.decode(episode.prompt_ids + episode.completion_ids)
    assert agent.renderer.text(episode.messages, [], generation_prompt=False) == whole + "\n"


def test_unknown_tool_is_an_error_the_model_reads():
    backend, _, episode = run_one(by_turn(call("frobnicate", x=1), "<answer>?</answer>"))
    assert episode.finish == "answer" and episode.answer == "?"
    assert episode.tool_calls == 1
    result = episode.messages[3]
    assert result["role"] == "tool"
    assert result["content"].startswith("error: unknown tool 'frobnicate'")
    assert "add" in result["content"]  # the available tools are named
    assert result["content"] in TOKENIZER.decode(backend.calls[1][0][0])


def test_a_tool_that_raises_becomes_an_error_string():
    turns = (
        call("explode", x=3) + call("refuse", x=1) + call("echo", text="hi"),
        "<answer>ok</answer>",
    )
    _, _, episode = run_one(by_turn(*turns), "Try the tools.", small_toolset())
    assert episode.finish == "answer" and episode.tool_calls == 3
    results = [m["content"] for m in episode.messages if m["role"] == "tool"]
    assert results == ["error: explode failed: RuntimeError: boom 3", "error: not today", '"hi"']


def test_max_turns_ends_the_episode():
    backend, _, episode = run_one(by_turn(call("add", a=1, b=1)), max_turns=3)
    assert episode.finish == "max_turns"
    assert episode.turns == 3 and episode.tool_calls == 3 and len(backend.calls) == 3
    assert not episode.has_answer and episode.answer is None
    # the last turn's tool result is in the conversation, but no tokens follow the last turn
    assert episode.messages[-1]["role"] == "tool"
    assert episode.completion_mask[-1] == 1 and episode.completion_ids[-1] == EOS
    assert episode.state == {}


def test_max_total_tokens_ends_the_episode():
    prompt_len = len(run_one(by_turn("<answer>1</answer>"))[2].prompt_ids)
    limit = prompt_len + 60
    backend, _, episode = run_one(by_turn(call("add", a=1, b=1)), max_total_tokens=limit)
    assert episode.finish == "max_tokens"
    assert len(episode.prompt_ids) + len(episode.completion_ids) >= limit
    for prompts, params in backend.calls:  # never asked for more than the budget left
        assert len(prompts[0]) + params.max_new_tokens <= limit
    assert episode.turns == len(backend.calls) >= 2


def test_a_turn_cut_at_the_token_limit():
    long_text = "Let me think about this problem very carefully, step by step, before I answer it."
    backend, agent, episode = run_one(by_turn(long_text, "<answer>5</answer>"), max_new_tokens=8)
    assert episode.finish == "answer" and episode.answer == 5
    assert episode.invalid_turns == ["the turn was cut at the token limit"]
    runs = spans(episode)
    assert [mask for mask, _ in runs] == [1, 0, 1]
    assert len(runs[0][1]) == 8 and EOS not in runs[0][1]  # cut: no end-of-turn generated
    assert runs[1][1][0] == EOS  # ... so the glue closes the turn, masked
    assert episode.messages[2] == {"role": "assistant", "content": TOKENIZER.decode(runs[0][1])}
    assert episode.messages[3] == {"role": "user", "content": "Your turn was too long. Be brief."}
    whole = TOKENIZER.decode(episode.prompt_ids + episode.completion_ids)
    assert agent.renderer.text(episode.messages, [], generation_prompt=False) == whole + "\n"


# -- batches -------------------------------------------------------------------------------------


def test_finished_episodes_drop_out_of_the_batch(calculator):
    scripts = {
        "one": ("<answer>1</answer>",),
        "two": (call("add", a=1, b=1), "<answer>2</answer>"),
        "three": (call("add", a=1, b=1), call("add", a=2, b=1), "<answer>3</answer>"),
    }
    backend = Scripted(by_instruction(scripts))
    agent = Agent(backend, mechanics(temperature=0.0))
    steps: list[int] = []
    episodes = agent.run(
        [EpisodeSpec(name, calculator.create(), task_id=name) for name in scripts], steps.append
    )
    assert [len(prompts) for prompts, _ in backend.calls] == [3, 2, 1]
    assert steps == [1, 2, 3]
    assert [e.task_id for e in episodes] == ["one", "two", "three"]  # input order kept
    assert [e.answer for e in episodes] == [1, 2, 3]
    assert [e.turns for e in episodes] == [1, 2, 3]
    assert [e.tool_calls for e in episodes] == [0, 1, 2]
    assert {e.finish for e in episodes} == {"answer"}


def test_each_episode_has_its_own_fresh_toolset():
    shop = load_toolset("shop")
    fresh = shop.create()
    fresh.reset(0)
    pending = next(o for o, row in fresh.state()["orders"].items() if row["status"] == "pending")
    scripts = {
        "cancel it": (call("cancel_order", order_id=pending), "<answer>done</answer>"),
        "look only": (call("get_order", order_id=pending), "<answer>pending</answer>"),
    }
    agent = Agent(Scripted(by_instruction(scripts)), mechanics(temperature=0.0))
    cancel, look = agent.run([EpisodeSpec(text, shop.create(), 0) for text in scripts])
    assert cancel.finish == look.finish == "answer"
    assert json.loads(cancel.messages[3]["content"])["status"] == "cancelled"
    assert cancel.state["orders"][pending]["status"] == "cancelled"
    assert look.state["orders"][pending]["status"] == "pending"
    assert look.state == fresh.state()


def test_a_toolset_that_cannot_reset_fails_only_its_episode(calculator):
    def broken_reset(seed):
        raise OSError("disk on fire")

    scripts = {"fine": (call("add", a=1, b=2), "<answer>3</answer>"), "broken": ("never",)}
    backend = Scripted(by_instruction(scripts))
    agent = Agent(backend, mechanics(temperature=0.0))
    fine, broken = agent.run(
        [
            EpisodeSpec("fine", calculator.create()),
            EpisodeSpec("broken", small_toolset(reset=broken_reset)),
        ]
    )
    assert fine.finish == "answer" and fine.answer == 3
    assert broken.finish == "error"
    assert "could not start" in broken.error and "disk on fire" in broken.error
    assert broken.completion_ids == [] and broken.turns == 0 and broken.state is None
    assert [len(prompts) for prompts, _ in backend.calls] == [1, 1]  # never generated for it


def test_a_state_that_fails_is_recorded():
    def bad_state():
        raise ValueError("no state")

    _, _, episode = run_one(by_turn("<answer>1</answer>"), "x", small_toolset(state=bad_state))
    assert episode.finish == "answer" and episode.state is None
    assert episode.error == "state() failed: ValueError: no state"


def test_a_tool_result_or_state_that_is_not_json_data_is_named_in_the_episode():
    def when(text: str) -> object:
        """When the text was written.

        Args:
            text: The text.
        """
        return {"text": text, "at": {1, 2}}

    toolset = Toolset([Tool.from_function(when)], state=lambda: {"due": [Path("/x")]})
    turns = (call("when", text="hi"), "<answer>ok</answer>")
    _, _, episode = run_one(by_turn(*turns), "When?", toolset)
    assert [m["content"] for m in episode.messages if m["role"] == "tool"] == [
        'error: when\'s result is not JSON data: result["at"] is a set'
    ]
    assert episode.state is None
    assert episode.error == 'state() is not JSON data: state["due"][0] is a pathlib.PosixPath'


def test_episodes_are_json_serialisable(calculator):
    scripts = {
        "a": (call("add", a=0.5, b=1), '<answer>[1.5, "x"]</answer>'),
        "b": ('<tool_call>{"name": </tool_call>',),
    }
    agent = Agent(Scripted(by_instruction(scripts)), mechanics(temperature=0.0, max_turns=2))
    episodes = agent.run([EpisodeSpec(name, calculator.create(), 7, name) for name in scripts])
    assert [e.finish for e in episodes] == ["answer", "max_turns"]
    for episode in episodes:
        data = json.loads(json.dumps(episode.to_dict()))
        assert data == episode.to_dict()
        assert data["seed"] == 7
        assert len(data["completion_ids"]) == len(data["completion_mask"]) == len(data["logprobs"])
    assert episodes[0].answer == [1.5, "x"]
    assert len(episodes[1].invalid_turns) == 2


def test_an_episode_near_its_token_limit_does_not_cut_the_others(calculator):
    long_instruction = "Please help. " * 40 + "What is 1 + 1?"
    reply = "<answer>The sum of one and one is two, as anyone can check by counting.</answer>"
    scripts = {long_instruction: (reply,), "short": (reply,)}
    alone = run_one(by_turn(reply), long_instruction)[2]
    limit = len(alone.prompt_ids) + 8  # the long episode has 8 tokens left, the short one more
    backend = Scripted(by_instruction(scripts))
    agent = Agent(backend, mechanics(temperature=0.0, max_total_tokens=limit, max_turns=1))
    near, short = agent.run([EpisodeSpec(text, calculator.create()) for text in scripts])
    assert near.finish == "max_tokens" and near.invalid_turns
    assert len(near.prompt_ids) + len(near.completion_ids) == limit  # cut at its own budget
    assert near.completion_mask == [1] * 8
    assert short.finish == "answer" and short.invalid_turns == []  # not cut by its neighbour
    assert short.answer == "The sum of one and one is two, as anyone can check by counting."


# -- answer protocols ----------------------------------------------------------------------------


def protocol_episode(turns, protocol, toolset=None, reminder=True):
    backend = Scripted(by_turn(*turns))
    config = AgentConfig(temperature=0.0, answer_protocol=protocol, answer_reminder=reminder)
    agent = Agent(backend, config, fmt=HermesFormat())
    toolset = toolset or load_toolset("calculator").create()
    [episode] = agent.run([EpisodeSpec("What is 2 + 3?", toolset)])
    return backend, episode


def test_the_tool_protocol_adds_an_answer_tool_whose_call_ends_the_episode():
    # a real Qwen2.5-Coder-0.5B turn: the answer tool called with its argument beside the name
    backend, episode = protocol_episode(
        [call("add", a=2, b=3), '{"name": "final_answer", "answer": "5"}'], "tool"
    )
    assert episode.finish == "answer" and episode.has_answer and episode.answer == "5"
    assert episode.tool_calls == 1  # the answer is not a tool call
    prompt = TOKENIZER.decode(backend.calls[0][0][0])
    assert "call the final_answer tool" in prompt  # the instructions, and the tool (template)
    assert episode.messages[-1]["tool_calls"][0]["function"]["name"] == "final_answer"


def test_calls_before_the_answer_tool_in_the_same_turn_still_run():
    turn = call("add", a=2, b=3) + call("final_answer", answer=5)
    _, episode = protocol_episode([turn], "tool")
    assert episode.finish == "answer" and episode.answer == 5 and episode.tool_calls == 1
    assert [m["role"] for m in episode.messages[-2:]] == ["assistant", "tool"]


def test_a_toolset_with_its_own_final_answer_tool_keeps_it():
    def final_answer(answer: str) -> str:
        """Record the answer.

        Args:
            answer: The answer.
        """
        return f"recorded {answer}"

    toolset = Toolset([Tool.from_function(final_answer)])
    _, episode = protocol_episode(
        [call("final_answer", answer="x"), "<answer>x</answer>"], "tool", toolset
    )
    assert episode.tool_calls == 1 and episode.turns == 2  # the toolset's tool ran
    assert episode.messages[3]["content"].startswith('"recorded x"')


@pytest.mark.parametrize(
    ("protocol", "reminder"),
    [
        ("tag", "reply with <answer>VALUE</answer> now"),
        ("plain", "reply with only the answer now"),
        ("tool", "call final_answer with the answer now"),
    ],
)
def test_each_turns_last_tool_result_reminds_how_to_answer(protocol, reminder):
    turn = call("add", a=2, b=3) + call("add", a=1, b=1)
    _, episode = protocol_episode([turn, "<answer>5</answer>"], protocol)
    first, last = episode.messages[3], episode.messages[4]
    assert first["content"] == "5"
    assert last["content"].startswith("2\n\n") and last["content"].endswith(reminder + ".")
    assert episode.answer == 5  # every protocol accepts an answer tag
    _, plain = protocol_episode([turn, "<answer>5</answer>"], protocol, reminder=False)
    assert plain.messages[4]["content"] == "2"


def test_an_unknown_answer_protocol_is_a_one_line_error():
    from sc_core.errors import ScError

    with pytest.raises(ScError, match="unknown answer protocol 'xml'; available: tag, plain"):
        AgentConfig(answer_protocol="xml")
