"""Any LangChain chat model as an sc :class:`~sc_core.models.ModelBackend` (challenger or executor).

sc is token-in/token-out; a chat model is messages-in/message-out. The bridge is a tiny
*message codec* tokenizer, :class:`MessageCodec`, whose chat template writes each message as a
record between control characters::

    \\x1e role[\\x1c name] \\x1f content \\x1d        (RS, FS, US, GS: never in the content)

and whose generation prompt is the start of an assistant record (``\\x1eassistant\\x1f``). The
template has no tool support, so :func:`~sc_core.toolcalls.detect_format` picks the ``fallback``
format: the system prompt lists the tools and teaches the ``<tool_call>`` syntax, which any
instruction-following chat model can write, and sc's parser reads its turns as it reads any
model's. Rendering is prefix-stable (``ChatRenderer.delta`` works) and ``\\x1d`` is the
end-of-turn token.

:meth:`LangChainChatBackend.generate` decodes each prompt back into its records, maps them to
LangChain messages (a tool result, which carries no ``tool_call_id`` in the fallback format,
becomes a ``HumanMessage`` "Tool result (name): ..."), calls ``chat_model.batch`` once for the
whole batch, and encodes each reply as the tokens of an assistant turn. A prompt that ends inside
an assistant record (the challenger starts the task it asks for with ``<instruction>``) is
passed on as a reply prefix: by default the model is asked to begin with it, and the prefix is
taken off the reply, so ``"<instruction>" + reply`` is the whole task.

Token ids: each word, punctuation run or whitespace run is one id (so sc's token budgets,
``max_new_tokens`` and ``max_total_tokens``, stay close to real token counts), interned per
tokenizer; single characters are their code points. After :data:`MAX_PIECES` interned pieces,
new pieces are written character by character: memory stays bounded and every id decodes.

LangChain is imported when a backend is built, not when sc loads the plugin.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

from sc_core.errors import ScError
from sc_core.models import Generation, ModelBackend, SamplingParams

__all__ = [
    "CHAT_TEMPLATE",
    "LangChainChatBackend",
    "MessageCodec",
    "Record",
    "load_chat_model",
]

log = logging.getLogger(__name__)

NAME, END, RECORD, FIELD = "\x1c", "\x1d", "\x1e", "\x1f"
CONTROL = re.compile("[\x1c-\x1f]")
CHAT_TEMPLATE = (
    "{% for message in messages %}\x1e{{ message['role'] }}\x1f{{ message['content'] }}\x1d"
    "{% endfor %}{% if add_generation_prompt %}\x1eassistant\x1f{% endif %}"
)
"""What :class:`MessageCodec` renders, as a Jinja template (documentation: the codec renders it in
Python, adding the ``\\x1c name`` of tool messages and sanitising contents)."""

MAX_PIECES = 1_000_000
"""Interned multi-character pieces per codec; later new pieces are encoded per character."""
_FIRST_PIECE_ID = 0x110000  # above every code point
_PIECE = re.compile(r"[\x1c-\x1f]| ?\w{1,32}| ?[^\w\s]{1,8}|[^\S\x1c-\x1f]{1,32}")


def _text(content: Any) -> str:
    """Message content as text: strings as they are, content-block lists joined by their text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict) and block.get("type") in (None, "text"):
                parts.append(str(block.get("text", "")))
        return "".join(parts)
    return str(content)


def clean(text: str) -> str:
    """``text`` without the codec's control characters."""
    return CONTROL.sub("", text)


def _hermes(call: dict[str, Any]) -> str:
    """An OpenAI-style ``tool_calls`` entry as a fallback-format ``<tool_call>`` tag."""
    function = call.get("function") if isinstance(call.get("function"), dict) else call
    arguments = function.get("arguments", function.get("args", {}))
    if isinstance(arguments, str):
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments)
    body = json.dumps({"name": function.get("name", ""), "arguments": arguments})
    return f"<tool_call>{body}</tool_call>"


@dataclass
class Record:
    """One decoded message: role, content, tool name, and whether it was closed with ``\\x1d``."""

    role: str
    content: str
    name: str | None = None
    closed: bool = True


class MessageCodec:
    """A tokenizer-shaped codec for chat messages (see the module docstring).

    Implements what sc uses of a Hugging Face tokenizer: ``apply_chat_template``, calling it,
    ``encode``/``decode``, ``eos_token``/``eos_token_id`` and ``chat_template``.
    """

    chat_template = CHAT_TEMPLATE
    eos_token = END
    eos_token_id = ord(END)
    pad_token, pad_token_id = END, ord(END)
    bos_token, bos_token_id = None, None

    def __init__(self, max_pieces: int = MAX_PIECES):
        self.max_pieces = max_pieces
        self._ids: dict[str, int] = {}
        self._pieces: list[str] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return _FIRST_PIECE_ID + len(self._pieces)

    @property
    def all_special_tokens(self) -> list[str]:
        return [END]

    # -- rendering -------------------------------------------------------------------------------

    @staticmethod
    def render_message(message: dict[str, Any]) -> str:
        role = clean(str(message.get("role") or "user"))
        content = clean(_text(message.get("content")))
        calls = message.get("tool_calls") or []
        if calls and "<tool_call>" not in content:  # calls given only as data: write them out
            content = "\n".join(
                [content.strip()] * bool(content.strip()) + [_hermes(c) for c in calls]
            )
            content = clean(content)
        name = message.get("name")
        header = f"{role}{NAME}{clean(str(name))}" if role == "tool" and name else role
        return f"{RECORD}{header}{FIELD}{content}{END}"

    def apply_chat_template(
        self,
        conversation: list[dict[str, Any]],
        tools: Any = None,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        continue_final_message: bool = False,
        **kwargs: Any,
    ) -> str | list[int]:
        """The conversation as records; the generation prompt opens an assistant record.
        ``tools`` are ignored (the fallback format puts them in the system prompt)."""
        text = "".join(self.render_message(message) for message in conversation)
        if continue_final_message and text.endswith(END):
            text = text[: -len(END)]
        elif add_generation_prompt:
            text += f"{RECORD}assistant{FIELD}"
        return self.encode(text) if tokenize else text

    @staticmethod
    def parse(text: str) -> list[Record]:
        """The records in ``text``; the last may be open (``closed`` False): a generation prompt,
        with what the assistant's turn already holds as its content. Text outside records is
        kept as a user message, so nothing is lost."""
        records: list[Record] = []
        for number, chunk in enumerate(text.split(RECORD)):
            if not chunk:
                continue
            if number == 0:  # before the first record: not made by this codec
                records.append(Record("user", clean(chunk)))
                continue
            closed = chunk.endswith(END)
            body = chunk[: -len(END)] if closed else chunk
            header, found, content = body.partition(FIELD)
            if not found:
                header, content = "user", header
            role, _, name = header.partition(NAME)
            records.append(Record(role or "user", clean(content), name or None, closed))
        return records

    # -- tokens ----------------------------------------------------------------------------------

    def _piece_ids(self, piece: str) -> list[int]:
        if len(piece) == 1:
            return [ord(piece)]
        found = self._ids.get(piece)
        if found is not None:
            return [found]
        with self._lock:
            found = self._ids.get(piece)
            if found is None:
                if len(self._pieces) >= self.max_pieces:
                    return [ord(char) for char in piece]
                found = _FIRST_PIECE_ID + len(self._pieces)
                self._pieces.append(piece)
                self._ids[piece] = found
        return [found]

    def encode(self, text: str, add_special_tokens: bool = False, **kwargs: Any) -> list[int]:
        return [i for piece in _PIECE.findall(text) for i in self._piece_ids(piece)]

    def __call__(self, text: str | list[str], add_special_tokens: bool = False, **kwargs: Any):
        if isinstance(text, str):
            return {"input_ids": self.encode(text)}
        return {"input_ids": [self.encode(item) for item in text]}

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False, **kwargs: Any) -> str:
        """The text of ``ids``; ValueError for an id this codec never made."""
        parts = []
        for token in ids:
            token = int(token)
            if token < _FIRST_PIECE_ID:
                if token < 0:
                    raise ValueError(f"token id {token} is not from this codec")
                parts.append(chr(token))
            else:
                try:
                    parts.append(self._pieces[token - _FIRST_PIECE_ID])
                except IndexError:
                    raise ValueError(f"token id {token} is not from this codec") from None
        text = "".join(parts)
        return clean(text) if skip_special_tokens else text

    def batch_decode(self, sequences: Iterable[Iterable[int]], **kwargs: Any) -> list[str]:
        return [self.decode(ids, **kwargs) for ids in sequences]


# -- loading a chat model from a spec ------------------------------------------------------------

_TARGET = re.compile(r"^[\w./\\-]+:[A-Za-z_][\w.]*$")


def load_chat_model(spec: str) -> Any:
    """A LangChain chat model from a spec: ``pkg.module:attr`` or ``file.py:attr`` (a chat model,
    or a class or zero-argument factory returning one), else anything
    ``langchain.chat_models.init_chat_model`` takes (``openai:gpt-4o-mini``)."""
    from langchain_core.language_models import BaseChatModel

    problems = []
    if _TARGET.match(spec) or spec.endswith(".py"):
        from sc_core.tools import import_target

        try:
            target = import_target(spec)
        except Exception as error:
            problems.append(f"import {spec}: {' '.join(str(error).split())}")
        else:
            made = (
                target() if callable(target) and not isinstance(target, BaseChatModel) else target
            )
            if not isinstance(made, BaseChatModel):
                raise ScError(f"langchain:{spec} is {type(made).__name__}, not a chat model")
            return made
    try:
        from langchain.chat_models import init_chat_model
    except ImportError:
        problems.append("init_chat_model needs the langchain package (pip install langchain)")
    else:
        try:
            return init_chat_model(spec)
        except Exception as error:
            problems.append(f"init_chat_model({spec!r}): {' '.join(str(error).split())}")
    raise ScError(f"cannot load the chat model langchain:{spec}: " + "; ".join(problems))


def _model_name(chat_model: Any) -> str:
    for attribute in ("model_name", "model", "model_id"):
        value = getattr(chat_model, attribute, None)
        if isinstance(value, str) and value:
            return value
    return type(chat_model).__name__


# -- the backend ---------------------------------------------------------------------------------


class LangChainChatBackend(ModelBackend):
    """A LangChain chat model (ChatOpenAI, ChatAnthropic, ...), through a message codec."""

    name = "langchain"

    def __init__(
        self,
        chat_model: Any,
        *,
        prefill: Literal["hint", "message", "none"] = "hint",
        forward_sampling: bool = True,
        max_concurrency: int | None = None,
        max_pieces: int = MAX_PIECES,
        **options: Any,
    ):
        """``chat_model``: a LangChain chat model, or a spec for :func:`load_chat_model` (what
        ``--model langchain:SPEC`` passes).

        ``prefill``: how a reply prefix (a prompt ending inside an assistant turn) reaches the
        model: ``hint`` asks for it at the end of the last user message; ``message`` sends it as
        a final ``AIMessage`` (a true prefill for models that continue one, e.g. Anthropic's, or
        vLLM with ``continue_final_message``); ``none`` leaves it out. Either way a reply that
        repeats the prefix is cut after it.

        ``forward_sampling``: pass ``temperature``, ``max_tokens`` (and ``top_p`` when not 1)
        to the model as call arguments; turn off for models that refuse them.

        ``max_concurrency``: most calls at once within one ``generate`` batch."""
        if isinstance(chat_model, str):
            spec, chat_model = chat_model, load_chat_model(chat_model)
        else:
            spec = f"{type(chat_model).__name__}:{_model_name(chat_model)}"
        from langchain_core.language_models import BaseChatModel
        from langchain_core.runnables import Runnable

        if not isinstance(chat_model, (BaseChatModel, Runnable)):
            raise ScError(f"{type(chat_model).__name__} is not a LangChain chat model")
        if prefill not in ("hint", "message", "none"):
            raise ScError(f"prefill must be hint, message or none, not {prefill!r}")
        super().__init__(spec, **options)
        self.chat_model = chat_model
        self.prefill = prefill
        self.forward_sampling = forward_sampling
        self.max_concurrency = max_concurrency
        self._tokenizer = MessageCodec(max_pieces)

    @property
    def tokenizer(self) -> MessageCodec:
        return self._tokenizer

    # -- prompts to messages ---------------------------------------------------------------------

    def conversation(self, prompt: list[int]) -> tuple[list[Any], str]:
        """A prompt as LangChain messages, and the reply prefix it ends with ('' if none)."""
        from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

        records = MessageCodec.parse(self._tokenizer.decode(prompt))
        prefix = ""
        if records and not records[-1].closed and records[-1].role == "assistant":
            prefix = records.pop().content
        messages: list[Any] = []
        results: list[str] = []  # consecutive tool results, sent as one message

        def flush() -> None:
            if results:
                messages.append(HumanMessage("\n\n".join(results)))
                results.clear()

        for record in records:
            if record.role == "tool":
                label = f"Tool result ({record.name})" if record.name else "Tool result"
                results.append(f"{label}: {record.content}")
                continue
            flush()
            if record.role == "system":
                messages.append(SystemMessage(record.content))
            elif record.role == "assistant":
                messages.append(AIMessage(record.content))
            else:
                messages.append(HumanMessage(record.content))
        flush()
        if prefix.strip() and self.prefill == "message":
            messages.append(AIMessage(prefix))
        elif prefix.strip() and self.prefill == "hint":
            hint = f"Begin your reply with {prefix.strip()}"
            if messages and isinstance(messages[-1], HumanMessage):
                last = messages[-1]
                messages[-1] = HumanMessage(f"{_text(last.content)}\n\n{hint}")
            else:
                messages.append(HumanMessage(hint))
        return messages, prefix

    def call_arguments(self, params: SamplingParams) -> dict[str, Any]:
        if not self.forward_sampling:
            return {}
        arguments: dict[str, Any] = {
            "temperature": params.temperature,
            "max_tokens": params.max_new_tokens,
        }
        if params.top_p != 1.0:
            arguments["top_p"] = params.top_p
        return arguments

    # -- replies to generations ------------------------------------------------------------------

    @staticmethod
    def reply_text(message: Any) -> str:
        """A reply's text; native tool calls (a model with tools bound) as ``<tool_call>`` tags."""
        text = _text(getattr(message, "content", message))
        calls = getattr(message, "tool_calls", None) or []
        if calls:
            tags = [
                _hermes({"name": c.get("name", ""), "arguments": c.get("args", {})}) for c in calls
            ]
            text = "\n".join([text.strip()] * bool(text.strip()) + tags)
        return clean(text)

    @staticmethod
    def finish_reason(message: Any) -> str:
        metadata = getattr(message, "response_metadata", None) or {}
        reasons = {metadata.get("finish_reason"), metadata.get("stop_reason")}
        return "length" if reasons & {"length", "max_tokens"} else "stop"

    @staticmethod
    def without_prefix(text: str, prefix: str) -> str:
        """The reply as the continuation of ``prefix``: cut after the prefix when it repeats it."""
        start = prefix.strip()
        if not start:
            return text
        found = text.find(start)
        return text[found + len(start) :] if found >= 0 else text

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        if params.regex is not None:
            raise ScError("the langchain backend cannot constrain decoding")
        if not prompts:
            return []
        conversations = [self.conversation(prompt) for prompt in prompts]
        config = {"max_concurrency": self.max_concurrency} if self.max_concurrency else None
        replies = self.chat_model.batch(
            [messages for messages, _ in conversations],
            config,
            return_exceptions=True,
            **self.call_arguments(params),
        )
        failures = [reply for reply in replies if isinstance(reply, Exception)]
        if failures and len(failures) == len(replies):
            error = failures[0]
            raise ScError(f"the chat model failed: {type(error).__name__}: {error}") from error
        generations = []
        for (_, prefix), reply in zip(conversations, replies, strict=True):
            if isinstance(reply, Exception):  # one failed call: an empty turn, not a lost batch
                log.warning("chat model call failed: %s: %s", type(reply).__name__, reply)
                generations.append(Generation([self._tokenizer.eos_token_id], "", None, "stop"))
                continue
            text = self.without_prefix(self.reply_text(reply), prefix)
            finish = self.finish_reason(reply)
            ids = self._tokenizer.encode(text)
            if finish == "stop":
                ids.append(self._tokenizer.eos_token_id)
            generations.append(Generation(ids, text, None, finish))
        return generations
