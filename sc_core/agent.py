"""The multi-turn tool-calling loop, token-in/token-out.

Many episodes run together: as each assistant turn is generated, the tool calls it asks for run
on that episode's own fresh toolset and the results are appended; the episode's next turn is
then requested at once, and the backend batches it with whatever else is running (continuous
batching on vLLM and OpenAI-compatible servers, waves of one batch on transformers). Episodes
that answer, run out of turns or run out of tokens drop out.

Token ids are kept exactly as generated. Everything else appended to the conversation (tool
results, the template's glue between turns, feedback on an unparseable turn) is rendered with
the chat template and masked out of the loss (``completion_mask`` 0), so an RL trainer learns
only from the model's own tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import ScError
from .models import Generation, ModelBackend, Request, SamplingParams
from .toolcalls import (
    ANSWER_PROTOCOLS,
    FINAL_ANSWER_TOOL,
    ParsedTurn,
    ToolCall,
    ToolCallFormat,
    detect_format,
    render_tool_result,
)
from .tools import ToolError, Toolset

SYSTEM_PROMPT = (
    "You are an agent that completes the user's task by calling tools. Call tools to look up "
    "or change what you need, read their results, then give the final answer."
)


@dataclass(frozen=True)
class AgentConfig:
    """Limits and sampling for executor episodes."""

    max_turns: int = 6
    """Assistant turns per episode."""
    max_new_tokens: int = 256
    """Tokens per assistant turn."""
    max_total_tokens: int = 4096
    """Prompt plus everything after it, per episode."""
    temperature: float = 0.7
    top_p: float = 1.0
    system_prompt: str = SYSTEM_PROMPT
    answer_protocol: str = "tool"
    """How the model is told to give its final answer: ``tag`` (``<answer>VALUE</answer>``),
    ``plain`` (a turn with no tool call is the answer) or ``tool`` (a ``final_answer`` tool
    is added to the toolset's); see :data:`sc_core.toolcalls.ANSWER_PROTOCOLS`. Every
    protocol accepts the others' answers."""
    answer_reminder: bool = True
    """End each turn's last tool result with the protocol's reminder of how to answer."""

    def __post_init__(self) -> None:
        if self.answer_protocol not in ANSWER_PROTOCOLS:
            raise ScError(
                f"unknown answer protocol {self.answer_protocol!r}; "
                f"available: {', '.join(ANSWER_PROTOCOLS)}"
            )


@dataclass
class EpisodeSpec:
    """What to run: an instruction on a fresh toolset reset with ``seed``."""

    instruction: str
    toolset: Toolset
    seed: int = 0
    task_id: str | None = None
    system_prompt: str | None = None
    """Replaces AgentConfig.system_prompt for this episode (the challenger's exploration)."""


@dataclass
class Episode:
    """One finished episode: the conversation, its tokens, and how it ended."""

    task_id: str | None
    seed: int
    messages: list[dict[str, Any]]
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    completion_mask: list[int] = field(default_factory=list)
    """1 for tokens the model generated, 0 for tool results and template glue."""
    logprobs: list[float] = field(default_factory=list)
    """Per completion token; 0.0 where the mask is 0."""
    turns: int = 0
    tool_calls: int = 0
    invalid_turns: list[str] = field(default_factory=list)
    answer: Any = None
    has_answer: bool = False
    finish: str = ""
    """``answer``, ``max_turns``, ``max_tokens`` or ``error``."""
    state: dict[str, Any] | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ChatRenderer:
    """Renders conversations with the model's chat template, and the token deltas between them."""

    def __init__(self, tokenizer: Any, fmt: ToolCallFormat):
        self.tokenizer, self.fmt = tokenizer, fmt
        self.end_of_turn = tokenizer.eos_token or ""

    def text(self, messages: list[dict], tools: list[dict], generation_prompt: bool) -> str:
        kwargs: dict[str, Any] = {"tools": tools} if self.fmt.native else {}
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=generation_prompt, **kwargs
        )

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def system_message(
        self, base: str, tools: list[dict], answer: str = ANSWER_PROTOCOLS["tag"].instructions
    ) -> dict[str, str]:
        content = f"{base}\n\n{self.fmt.system_prompt(tools, answer)}".strip()
        return {"role": "system", "content": content}

    def delta(
        self, messages: list[dict], added: list[dict], tools: list[dict], closed: bool
    ) -> list[int]:
        """Tokens that follow the last, generated, assistant turn when ``added`` messages come
        after it, up to the next generation prompt. ``closed``: that turn ended with the
        end-of-turn token (else it was cut, and the token is added here)."""
        before = self.text(messages, tools, generation_prompt=False)
        after = self.text(messages + added, tools, generation_prompt=True)
        if not after.startswith(before):
            raise ValueError("the chat template renders earlier turns differently later on")
        end = before.rfind(self.end_of_turn) if self.end_of_turn else -1
        glue = before[end + len(self.end_of_turn) :] if end >= 0 else ""
        if not closed:
            glue = self.end_of_turn + glue
        return self.encode(glue + after[len(before) :])


class _Running:
    """An episode in progress."""

    def __init__(self, spec: EpisodeSpec, episode: Episode, tools: list[dict]):
        self.spec, self.episode, self.tools = spec, episode, tools

    @property
    def length(self) -> int:
        return len(self.episode.prompt_ids) + len(self.episode.completion_ids)

    def append(self, ids: list[int], mask: int, logprobs: list[float] | None = None) -> None:
        self.episode.completion_ids += ids
        self.episode.completion_mask += [mask] * len(ids)
        self.episode.logprobs += logprobs if logprobs is not None else [0.0] * len(ids)


class Agent:
    """Runs batches of episodes with one model."""

    def __init__(
        self,
        model: ModelBackend,
        config: AgentConfig | None = None,
        fmt: ToolCallFormat | None = None,
    ):
        self.model = model
        self.config = config or AgentConfig()
        self.fmt = fmt or detect_format(model.tokenizer)
        self.renderer = ChatRenderer(model.tokenizer, self.fmt)

    def start(self, spec: EpisodeSpec) -> _Running:
        protocol = ANSWER_PROTOCOLS[self.config.answer_protocol]
        tools = [tool.spec() for tool in spec.toolset.tools.values()]
        if protocol.tool and FINAL_ANSWER_TOOL not in spec.toolset.tools:
            tools.append(protocol.tool)
        system = self.renderer.system_message(
            spec.system_prompt or self.config.system_prompt, tools, protocol.instructions
        )
        messages = [system, {"role": "user", "content": spec.instruction}]
        prompt = self.renderer.encode(self.renderer.text(messages, tools, generation_prompt=True))
        spec.toolset.reset(spec.seed)
        return _Running(spec, Episode(spec.task_id, spec.seed, messages, prompt), tools)

    def run(
        self, specs: list[EpisodeSpec], on_step: Callable[[int], None] | None = None
    ) -> list[Episode]:
        """Run every episode to its end; ``on_step(finished)`` is called as episodes end."""
        running = []
        for spec in specs:
            try:
                running.append(self.start(spec))
            except Exception as error:  # a toolset that cannot reset is a failed episode
                running.append(
                    self._failed(spec, f"could not start: {type(error).__name__}: {error}")
                )
        finished = sum(1 for run in running if run.episode.finish)

        def then(request: Request, generation: Generation) -> list[Request]:
            nonlocal finished
            run = request.owner
            self.step(run, generation)
            if not run.episode.finish:
                return [self._request(run)]
            finished += 1
            if on_step:
                on_step(finished)
            return []

        first = [self._request(run) for run in running if not run.episode.finish]
        self.model.generate_continuously(first, then)
        for run in running:
            self._finish(run)
        return [run.episode for run in running]

    def replay(self, spec: EpisodeSpec, turns: list[str]) -> Episode:
        """The episode in which the model writes ``turns`` instead of sampling them (a
        demonstration, :mod:`sc_core.demonstrations`): each turn is tokenized, closed with the
        end-of-turn token and applied as a generated one is, so its tool calls run and its
        answer ends the episode. Turns left over once the episode ends are dropped; an episode
        still going after the last turn ends at ``max_turns``."""
        run = self.start(spec)
        for text in turns:
            if run.episode.finish:
                break
            ids = self.renderer.encode(text + self.renderer.end_of_turn)
            self.step(run, Generation(ids, text))
        if not run.episode.finish:
            run.episode.finish = "max_turns"
        self._finish(run)
        return run.episode

    def _request(self, run: _Running) -> Request:
        """The episode's next turn, within its own token budget."""
        budget = self.config.max_total_tokens - run.length
        params = SamplingParams(
            max_new_tokens=max(1, min(self.config.max_new_tokens, budget)),
            temperature=self.config.temperature,
            top_p=self.config.top_p,
        )
        return Request(run.episode.prompt_ids + run.episode.completion_ids, params, run)

    def _failed(self, spec: EpisodeSpec, error: str) -> _Running:
        episode = Episode(spec.task_id, spec.seed, [], [], finish="error", error=error)
        return _Running(spec, episode, [])

    def step(self, run: _Running, generation: Generation) -> None:
        """Apply one generated assistant turn to its episode."""
        episode = run.episode
        episode.turns += 1
        run.append(generation.token_ids, 1, generation.logprobs)
        assistant = {"role": "assistant", "content": generation.text}
        if generation.finish_reason == "length":
            episode.messages.append(assistant)
            over = run.length >= self.config.max_total_tokens
            episode.invalid_turns.append("the turn was cut at the token limit")
            episode.finish = "max_tokens" if over else ""
            if not over:
                self._continue(run, [], "Your turn was too long. Be brief.", closed=False)
            return
        names = {tool["function"]["name"] for tool in run.tools}
        parsed: ParsedTurn = self.fmt.parse(generation.text, tool_names=names)
        if parsed.tool_calls:
            assistant["tool_calls"] = [
                {"type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in parsed.tool_calls
            ]
        episode.messages.append(assistant)
        if parsed.error:
            episode.invalid_turns.append(parsed.error)
            self._continue(run, [], f"Your last turn could not be understood: {parsed.error}")
        elif parsed.tool_calls:
            self._run_calls(run, parsed.tool_calls)
        elif parsed.has_answer:
            episode.answer, episode.has_answer, episode.finish = parsed.answer, True, "answer"
        else:
            episode.invalid_turns.append("no tool call and no answer")
            self._continue(run, [], "Call a tool or give the final answer.")

    def _run_calls(self, run: _Running, calls: list[ToolCall]) -> None:
        """Run a turn's calls in order; a call of the answer tool (where the toolset has none
        of its own) ends the episode with its ``answer`` argument, after the calls before it."""
        results = []
        for call in calls:
            if call.name == FINAL_ANSWER_TOOL and call.name not in run.spec.toolset.tools:
                run.episode.answer = call.arguments.get("answer")
                run.episode.has_answer, run.episode.finish = True, "answer"
                run.episode.messages += results
                return
            results.append(self._call(run, call))
        if self.config.answer_reminder and results:
            reminder = ANSWER_PROTOCOLS[self.config.answer_protocol].reminder
            results[-1]["content"] += f"\n\n{reminder}"
        self._continue(run, results, None)

    def _call(self, run: _Running, call: ToolCall) -> dict[str, Any]:
        run.episode.tool_calls += 1
        try:
            result, error = run.spec.toolset.call(call.name, call.arguments), None
        except ToolError as failure:
            result, error = None, str(failure)
        except Exception as failure:  # a broken toolset is data, never a crashed loop
            result, error = None, f"{type(failure).__name__}: {failure}"
        content = render_tool_result(call, result, error)
        return {"role": "tool", "name": call.name, "content": content}

    def _continue(
        self, run: _Running, results: list[dict], feedback: str | None, closed: bool = True
    ) -> None:
        episode = run.episode
        added = results + ([{"role": "user", "content": feedback}] if feedback else [])
        if episode.turns >= self.config.max_turns:  # the conversation is complete, the tokens end
            episode.messages += results
            episode.finish = "max_turns"
            return
        try:
            ids = self.renderer.delta(episode.messages, added, run.tools, closed)
        except Exception as error:
            episode.finish, episode.error = "error", f"cannot render the conversation: {error}"
            return
        episode.messages += added
        run.append(ids, 0)
        if run.length >= self.config.max_total_tokens:
            episode.finish = "max_tokens"

    def _finish(self, run: _Running) -> None:
        if run.episode.finish == "error" and not run.episode.messages:
            return
        try:
            run.episode.state = run.spec.toolset.state()
        except ScError as error:  # not JSON data: the message names the bad value
            run.episode.error = run.episode.error or str(error)
        except Exception as error:
            run.episode.error = (
                run.episode.error or f"state() failed: {type(error).__name__}: {error}"
            )
