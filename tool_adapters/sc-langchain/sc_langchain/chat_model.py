"""An sc model (a trained checkpoint, an alias, any ``[backend:]model`` spec) as a LangChain chat
model, with tool calling: :class:`SCChatModel`.

The model sees exactly what sc's agent shows it under the ``tag`` answer protocol without
reminders (``AgentConfig(answer_protocol="tag", answer_reminder=False)``): LangChain's loop
ends on a turn without tool calls, and its tools are LangChain's alone, so the ``final_answer``
tool of sc's default ``tool`` protocol has no place here. A checkpoint trained with
``--answer-protocol tag`` works in a LangChain agent as it did in training:

- the system prompt is sc's (:meth:`ChatRenderer.system_message`): the agent's default base
  prompt, or the conversation's own ``SystemMessage``, followed by the tool-call format's part
  (for a template without tool support, such as SmolLM2's, the ``fallback`` format: the tool
  list, the ``<tool_call>`` syntax and the ``<answer>`` convention);
- the prompt's tokens are built as the agent builds them: the first turn rendered with the chat
  template, each assistant turn's own text and end-of-turn token, then the template's rendering
  of what follows (tool results as sc renders them, JSON or ``error: ...``);
- the reply is parsed by the format's parser: tool calls become ``AIMessage.tool_calls`` (with
  fresh ids), a final answer (``<answer>VALUE</answer>``, or a plain turn) becomes the content,
  and a turn that cannot be parsed becomes a plain ``AIMessage`` with its text (never an error).

The raw text of each turn is kept in ``additional_kwargs["sc_text"]`` so that later calls
render the conversation with the model's own words.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict, Field, PrivateAttr

from sc_core.agent import SYSTEM_PROMPT, ChatRenderer
from sc_core.errors import ScError
from sc_core.models import ModelBackend, SamplingParams, load_model
from sc_core.toolcalls import (
    FORMATS,
    ToolCall,
    ToolCallFormat,
    detect_format,
    render_tool_result,
)

__all__ = ["SCChatModel", "forced_prefix", "to_sc_messages"]

SC_TEXT = "sc_text"
"""``additional_kwargs`` key holding an assistant turn's raw text."""
_ANSWER_TAG = re.compile(r"<answer>", re.IGNORECASE)


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            block
            if isinstance(block, str)
            else str(block.get("text", ""))
            if isinstance(block, dict) and block.get("type") in (None, "text")
            else ""
            for block in content
        )
    return str(content)


def _call_text(fmt: ToolCallFormat, calls: list[ToolCall]) -> str:
    """Tool calls written in ``fmt``'s syntax (for assistant turns this model did not write)."""
    if fmt.name == "pythonic":
        items = ", ".join(
            f"{c.name}({', '.join(f'{k}={json.dumps(v)}' for k, v in c.arguments.items())})"
            for c in calls
        )
        return f"[{items}]"
    if fmt.name == "llama3_json":
        return "\n".join(json.dumps({"name": c.name, "parameters": c.arguments}) for c in calls)
    return "\n".join(
        f"<tool_call>{json.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>"
        for c in calls
    )


def _tool_value(content: str) -> Any:
    """A ToolMessage's content as the value sc renders: JSON content as its value, else text."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        return content


def to_sc_messages(
    messages: Sequence[BaseMessage],
    fmt: ToolCallFormat,
    renderer: ChatRenderer | None = None,
    tools: list[dict] | None = None,
    system_prompt: str | None = None,
) -> list[dict[str, Any]]:
    """LangChain messages as sc chat messages (what sc's agent keeps in ``Episode.messages``).

    With ``tools`` (and a ``renderer``) the first message is sc's system message: the
    conversation's ``SystemMessage`` (else ``system_prompt``, else sc's agent default) followed
    by the format's tool instructions. Without tools, system messages pass as they are."""
    out: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool_call_id -> tool name
    rest = list(messages)
    if tools and renderer is not None:
        base = system_prompt or SYSTEM_PROMPT
        if rest and isinstance(rest[0], SystemMessage):
            base = _text(rest.pop(0).content)
        out.append(renderer.system_message(base, tools))
    elif system_prompt and not (rest and isinstance(rest[0], SystemMessage)):
        out.append({"role": "system", "content": system_prompt})
    for message in rest:
        if isinstance(message, SystemMessage):
            out.append({"role": "system", "content": _text(message.content)})
        elif isinstance(message, HumanMessage):
            out.append({"role": "user", "content": _text(message.content)})
        elif isinstance(message, AIMessage):
            calls = [ToolCall(c["name"], dict(c.get("args") or {})) for c in message.tool_calls]
            for call in message.tool_calls:
                if call.get("id"):
                    names[call["id"]] = call["name"]
            raw = (message.additional_kwargs or {}).get(SC_TEXT)
            if not isinstance(raw, str):  # not written by this model: write the calls out
                raw = _text(message.content).strip()
                if calls:
                    raw = "\n".join([raw] * bool(raw) + [_call_text(fmt, calls)])
            turn: dict[str, Any] = {"role": "assistant", "content": raw}
            if calls:
                turn["tool_calls"] = [call.to_openai() for call in calls]
            out.append(turn)
        elif isinstance(message, ToolMessage):
            name = message.name or names.get(message.tool_call_id) or "tool"
            content = _text(message.content)
            failed = message.status == "error"
            if failed and content.lower().startswith("error:"):
                content = content[len("error:") :].strip()
            result = None if failed else _tool_value(content)
            text = render_tool_result(ToolCall(name, {}), result, content if failed else None)
            out.append({"role": "tool", "name": name, "content": text})
        elif isinstance(message, ChatMessage):
            out.append({"role": message.role, "content": _text(message.content)})
        else:
            out.append({"role": "user", "content": _text(message.content)})
    return out


def _forced_name(choice: Any, names: list[str]) -> str | None:
    """The tool a ``tool_choice`` names, ``""`` for "some tool", None for no constraint."""
    if choice is None or choice is False or choice in ("auto", "none"):
        return None
    if choice is True or choice in ("any", "required"):
        return ""
    if isinstance(choice, dict):
        function = choice.get("function") if isinstance(choice.get("function"), dict) else choice
        choice = function.get("name", "")
    return choice if isinstance(choice, str) and choice in names else ""


def forced_prefix(fmt: ToolCallFormat, choice: Any, tools: list[dict]) -> str:
    """How a reply that must call a tool starts, in ``fmt``: ``tool_choice="any"`` (or
    ``"required"``, ``True``) opens a call, a tool's name opens a call of that tool. The model
    writes the rest; the reply is parsed as a whole, prefix included."""
    names = [tool["function"]["name"] for tool in tools if "function" in tool]
    name = _forced_name(choice, names)
    if name is None or not names:
        return ""
    if fmt.name == "pythonic":
        return f"[{name}(" if name else "["
    quoted = json.dumps(name)
    if fmt.name == "llama3_json":
        return f'{{"name": {quoted}, "parameters": {{' if name else '{"name": "'
    return f'<tool_call>{{"name": {quoted}, "arguments": {{' if name else "<tool_call>"


class SCChatModel(BaseChatModel):
    """A LangChain chat model over an sc model, with tool calling in sc's own format.

    ``SCChatModel("smollm2")``, ``SCChatModel("runs/x/checkpoint")``,
    ``SCChatModel("openai:MODEL@http://host/v1")`` or ``SCChatModel(backend=loaded_backend)``.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str = "smollm2"
    """An sc model spec (``[backend:]model``: an alias, a checkpoint directory, a hub id)."""
    backend: ModelBackend | None = Field(default=None, exclude=True)
    """An already loaded sc model; when set, ``model`` is only its name."""
    load_options: dict[str, Any] = Field(default_factory=dict)
    """Options for :func:`sc_core.models.load_model` (``batch_size``, ``device``...)."""
    temperature: float = 0.7
    """0 means greedy decoding."""
    max_tokens: int = 256
    """New tokens per turn."""
    top_p: float = 1.0
    seed: int | None = None
    system_prompt: str | None = None
    """Base system prompt when the conversation has none (sc's agent prompt when tools are
    bound)."""
    tool_format: str | None = None
    """Force a tool-call format (``hermes``, ``llama3_json``, ``pythonic``, ``fallback``);
    None: detected from the chat template, as sc's agent does."""

    _loaded: ModelBackend | None = PrivateAttr(default=None)
    _format: ToolCallFormat | None = PrivateAttr(default=None)
    _load_lock: Any = PrivateAttr(default_factory=threading.Lock)
    _generate_lock: Any = PrivateAttr(default_factory=threading.Lock)

    def __init__(self, model: str | ModelBackend | None = None, **kwargs: Any) -> None:
        if isinstance(model, ModelBackend):
            kwargs["backend"] = model
        elif model is not None:
            kwargs["model"] = model
        backend = kwargs.get("backend")
        if backend is not None and "model" not in kwargs:
            kwargs["model"] = str(getattr(backend, "model_id", "") or type(backend).__name__)
        super().__init__(**kwargs)

    # -- LangChain's model interface ------------------------------------------------------------

    @property
    def _llm_type(self) -> str:
        return "sc"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
        }

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable | BaseTool],
        *,
        tool_choice: str | dict | bool | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind LangChain tools, pydantic models, functions or OpenAI tool dicts.

        ``tool_choice``: ``"none"`` hides the tools; ``"any"``/``"required"``/``True`` or a
        tool's name (or ``{"function": {"name": ...}}``) starts the reply with a call (of that
        tool) in the model's format, so that it writes one; ``"auto"``/None let it decide."""
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return super().bind(tools=formatted, **kwargs)

    # -- the sc side ----------------------------------------------------------------------------

    @property
    def sc_backend(self) -> ModelBackend:
        """The sc model, loaded on first use."""
        if self.backend is not None:
            return self.backend
        if self._loaded is None:
            with self._load_lock:
                if self._loaded is None:
                    self._loaded = load_model(self.model, **self.load_options)
        return self._loaded

    @property
    def format(self) -> ToolCallFormat:
        """The tool-call format, as sc's agent picks it for this model."""
        if self._format is None:
            if self.tool_format:
                if self.tool_format not in FORMATS:
                    known = ", ".join(FORMATS)
                    raise ScError(f"unknown tool format {self.tool_format!r}; known: {known}")
                self._format = FORMATS[self.tool_format]()
            else:
                self._format = detect_format(self.sc_backend.tokenizer)
        return self._format

    def sc_messages(
        self, messages: Sequence[BaseMessage], tools: list[dict] | None = None
    ) -> list[dict[str, Any]]:
        """The conversation as sc's agent would hold it."""
        fmt = self.format
        renderer = ChatRenderer(self.sc_backend.tokenizer, fmt)
        return to_sc_messages(messages, fmt, renderer, tools or [], self.system_prompt)

    def prompt_ids(self, messages: list[dict[str, Any]], tools: list[dict]) -> list[int]:
        """The token ids sc's agent would give the model for ``messages``: the opening turns
        rendered, each assistant turn as its text and the end-of-turn token, then the template's
        delta up to the next generation prompt."""
        renderer = ChatRenderer(self.sc_backend.tokenizer, self.format)
        try:
            first = next(i for i, m in enumerate(messages) if m["role"] == "assistant")
        except StopIteration:
            first = len(messages)
        whole = renderer.encode(renderer.text(messages, tools, generation_prompt=True))
        if first == 0 or first == len(messages):
            return whole
        try:
            ids = renderer.encode(renderer.text(messages[:first], tools, generation_prompt=True))
            done = messages[:first]
            index = first
            while index < len(messages):
                turn = messages[index]
                added = []
                index += 1
                while index < len(messages) and messages[index]["role"] != "assistant":
                    added.append(messages[index])
                    index += 1
                ids += renderer.encode(turn["content"])
                done = [*done, turn]
                if not added and index == len(messages):  # ends with the assistant: continue it
                    return ids
                ids += renderer.encode(renderer.end_of_turn)
                ids += renderer.delta(done, added, tools, closed=True)
                done = done + added
            return ids
        except ValueError:  # a template that is not prefix-stable: render it whole
            return whole

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools = list(kwargs.get("tools") or [])
        choice = kwargs.get("tool_choice")
        if choice == "none":
            tools = []
        sc_messages = self.sc_messages(messages, tools)
        ids = self.prompt_ids(sc_messages, tools)
        prefix = forced_prefix(self.format, choice, tools) if tools else ""
        if prefix:  # the reply is started for the model, as sc's challenger starts its tasks
            ids = ids + self.sc_backend.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        params = SamplingParams(
            max_new_tokens=int(kwargs.get("max_tokens", self.max_tokens)),
            temperature=float(kwargs.get("temperature", self.temperature)),
            top_p=float(kwargs.get("top_p", self.top_p)),
            seed=kwargs.get("seed", self.seed),
        )
        with self._generate_lock:  # one generation at a time per model (batch() runs threads)
            generation = self.sc_backend.generate([ids], params)[0]
        text = prefix + (generation.text if isinstance(generation.text, str) else "")
        for marker in stop or []:
            cut = text.find(marker, len(prefix))
            if marker and cut >= 0:
                text = text[:cut]
        message = self.to_message(text, tools)
        message.response_metadata.update(
            model_name=self.model,
            finish_reason=generation.finish_reason,
        )
        message.usage_metadata = {
            "input_tokens": len(ids),
            "output_tokens": len(generation.token_ids),
            "total_tokens": len(ids) + len(generation.token_ids),
        }
        return ChatResult(generations=[ChatGeneration(message=message)])

    def to_message(self, text: str, tools: list[dict]) -> AIMessage:
        """A model turn as an AIMessage: tool calls, the answer, or (garbage) the text."""
        raw = {SC_TEXT: text}
        try:
            fmt = self.format
            if not tools:
                return AIMessage(content=self._answer(text, fmt), additional_kwargs=raw)
            names = {tool["function"]["name"] for tool in tools if "function" in tool}
            parsed = fmt.parse(text, tool_names=names)
            metadata = {"sc_format": fmt.name}
            if parsed.error:
                metadata["sc_error"] = parsed.error
                invalid = []
                if parsed.tool_calls or "<tool_call>" in text:
                    invalid = [
                        invalid_tool_call(
                            name=None, args=text, id=self._call_id(), error=parsed.error
                        )
                    ]
                return AIMessage(
                    content=text.strip(),
                    invalid_tool_calls=invalid,
                    additional_kwargs=raw,
                    response_metadata=metadata,
                )
            if parsed.tool_calls:
                prose = text.split("<tool_call>", 1)[0].strip() if "<tool_call>" in text else ""
                calls = [
                    tool_call(name=call.name, args=call.arguments, id=self._call_id())
                    for call in parsed.tool_calls
                ]
                return AIMessage(
                    content=prose,
                    tool_calls=calls,
                    additional_kwargs=raw,
                    response_metadata=metadata,
                )
            return AIMessage(
                content=self._answer(text, fmt), additional_kwargs=raw, response_metadata=metadata
            )
        except Exception as error:  # a garbage turn is a plain message, never a failed call
            return AIMessage(
                content=text, additional_kwargs=raw, response_metadata={"sc_error": repr(error)}
            )

    @staticmethod
    def _answer(text: str, fmt: ToolCallFormat) -> str:
        """The turn's content: the ``<answer>`` value when it has one, else its text."""
        if not _ANSWER_TAG.search(text):
            return text.strip()
        parsed = fmt.parse(text, tool_names=set())
        if not parsed.has_answer:
            return text.strip()
        value = parsed.answer
        return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)

    @staticmethod
    def _call_id() -> str:
        return f"call_{uuid.uuid4().hex[:24]}"
