"""Inference backends: token-id prompts in, generated token ids (and log-probabilities) out.

A model spec is ``[backend:]model``: ``smollm2`` (the embedded model), ``transformers:PATH``,
``vllm:smollm2``, ``openai:MODEL@http://127.0.0.1:8000/v1``. Without a backend prefix the
fastest installed backend is used (:func:`default_backend`: vLLM where it is installed, else
transformers; ``SC_BACKEND`` overrides it). Aliases are registered by plugins with the
weights' source (``sc_core.model_sources``): ``smollm2`` is built in, ``qwen-coder-0.5b`` and
``qwen-coder-1.5b`` come with the sc-qwen-coder plugin. Any other name is a local path or a
Hugging Face hub id.
"""

from __future__ import annotations

import difflib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar

from .errors import ScError


@dataclass(frozen=True)
class SamplingParams:
    """How to sample one completion."""

    max_new_tokens: int = 256
    temperature: float = 0.7
    """0 means greedy decoding."""
    top_p: float = 1.0
    seed: int | None = None
    logprobs: bool = False
    """Return each sampled token's log-probability (costs time on some backends)."""
    regex: str | None = None
    """Constrain the completion to this regular expression (backends with supports_regex)."""


@dataclass
class Generation:
    """One completion, token ids exactly as generated (ending with the end-of-turn token when
    the model stopped by itself)."""

    token_ids: list[int]
    text: str
    logprobs: list[float] | None = None
    finish_reason: str = "stop"
    """``stop`` (the model ended its turn) or ``length`` (cut at max_new_tokens)."""


@dataclass
class Request:
    """One prompt to continue, among many (see ``ModelBackend.generate_continuously``)."""

    prompt: list[int]
    params: SamplingParams
    owner: Any = None
    """The caller's own handle: whose turn this is."""


Then = Callable[[Request, Generation], list[Request]]
"""Called as each request finishes; returns the requests that follow from it (none: done)."""


def generate_in_order(
    backend: ModelBackend, prompts: list[list[int]], params: SamplingParams
) -> list[Generation]:
    """``generate`` for a backend whose ``generate_continuously`` is its own: one request per
    prompt, completions in prompt order."""
    results: dict[int, Generation] = {}

    def keep(request: Request, generation: Generation) -> list[Request]:
        results[request.owner] = generation
        return []

    requests = [Request(prompt, params, index) for index, prompt in enumerate(prompts)]
    backend.generate_continuously(requests, keep)
    return [results[index] for index in range(len(prompts))]


class ModelBackend(ABC):
    """A loaded model that continues token-id prompts. Plugins register subclasses by name."""

    name: ClassVar[str]
    default_rank: ClassVar[int] = 0
    """Among installed backends, the highest rank serves specs that name no backend."""
    supports_regex: ClassVar[bool] = False
    """Whether ``SamplingParams.regex`` (constrained decoding) is honoured."""

    def __init__(self, model: str, **options: Any) -> None:
        self.model_id = model
        self.options = options

    @classmethod
    def installed(cls) -> bool:
        """Whether what the backend needs is installed (checked without importing it)."""
        return True

    @classmethod
    def weights_of(cls, model: str) -> str:
        """The weights a spec's model part names, which training loads in transformers: the
        model part itself, except for backends whose specs also say where the model runs."""
        return model

    @classmethod
    def with_weights(cls, model: str, checkpoint: str) -> str:
        """The model part of a spec for ``checkpoint``'s weights, served as ``model`` is (the
        next iteration's executor in ``sc run``)."""
        return checkpoint

    @property
    @abstractmethod
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer whose chat template renders conversations."""

    @abstractmethod
    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        """One completion per prompt, in order."""

    def generate_continuously(self, requests: list[Request], then: Then) -> None:
        """Complete ``requests`` and every request ``then`` returns for a finished one (an
        agent's next turn), until none is left.

        This default runs them in waves: one batched ``generate`` per wave and sampling
        setting, where requests that differ only in ``max_new_tokens`` share a batch and each
        completion is cut to its own limit. Backends with continuous batching override it, so
        that a request's follow-up starts as soon as it is known instead of with the next wave.
        """
        wave = list(requests)
        while wave:
            groups: dict[SamplingParams, list[Request]] = {}
            for request in wave:
                groups.setdefault(replace(request.params, max_new_tokens=0), []).append(request)
            wave = []
            for group in groups.values():
                longest = max(request.params.max_new_tokens for request in group)
                params = replace(group[0].params, max_new_tokens=longest)
                generations = self.generate([request.prompt for request in group], params)
                for request, generation in zip(group, generations, strict=True):
                    wave += then(request, self.cut(generation, request.params.max_new_tokens))

    def cut(self, generation: Generation, limit: int) -> Generation:
        """``generation`` cut to ``limit`` tokens, as if generated with that limit."""
        if len(generation.token_ids) <= limit:
            return generation
        ids = generation.token_ids[:limit]
        logprobs = generation.logprobs[:limit] if generation.logprobs is not None else None
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Generation(ids, text, logprobs, "length")

    def close(self) -> None:  # noqa: B027 (optional: most backends free memory when dropped)
        """Free the model's memory and any process it started."""


def cache_dir() -> Path:
    return Path(os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"))


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantize a GGUF model into a normal checkpoint at ``target``, atomically, once.

    transformers dequantizes GGUF to fp32 but keeps a GGUF quantization config, which makes the
    Trainer refuse the model as quantized; the saved copy has none.
    """
    if (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if "quantization_config" in model.config.__dict__:
            del model.config.quantization_config
        model.hf_quantizer = None
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process converted it meanwhile
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve_model(name: str) -> str:
    """A loadable path or hub id for ``name``: a registered alias becomes its weights (package
    files are joined and converted into the cache on first use); other names are unchanged."""
    from .model_sources import find_source

    source = find_source(name)
    return name if source is None else source.resolve()


def default_model() -> str:
    """The model used when none is given: the registered alias of highest ``default_rank``
    (``qwen-coder-0.5b`` where sc-qwen-coder is installed: a model that can write tasks and
    call tools), else the embedded ``smollm2``."""
    from .model_sources import model_sources

    ranked = sorted(model_sources().items(), key=lambda item: -item[1].default_rank)
    return ranked[0][0] if ranked else "smollm2"


def default_challenger(spec: str | None = None) -> str:
    """The model that writes an executor's tasks when none is named: the stronger alias its
    source pairs it with (``ModelSource.challenger``; the paper's distillation setting), with
    the executor's backend; "" (the executor itself) for a model with no pair.

    qwen-coder-0.5b is paired with qwen-coder-1.5b: the 1.5B's tasks were the first the 0.5B
    learned from (5 kept of 48 seeded calculator attempts); the 0.5B's own explorations kept
    0 of 16."""
    from .model_sources import find_source

    backend, model = parse_model_spec(spec)
    source = find_source(model)
    if source is None or not source.challenger or find_source(source.challenger) is None:
        return ""
    return source.challenger if spec is None or spec == model else f"{backend}:{source.challenger}"


def default_backend() -> str:
    """The backend of a spec that names none: ``SC_BACKEND`` when set, else the installed
    backend of highest ``default_rank`` (vLLM generates several times faster than transformers,
    on CPUs too: 270 against 36 tokens/s for SmolLM2 agent episodes on two cores)."""
    from .plugins import available, registry

    backends = registry("register_models")
    chosen = os.environ.get("SC_BACKEND")
    if chosen:
        if chosen not in backends:
            raise ScError(
                f"SC_BACKEND={chosen!r} is not a model backend{available(chosen, backends)}"
            )
        return chosen
    ranked = sorted(backends.items(), key=lambda item: -item[1].default_rank)
    return next((name for name, cls in ranked if cls.installed()), "transformers")


def parse_model_spec(spec: str | None) -> tuple[str, str]:
    """``[backend:]model`` split into (backend, model); no backend means
    :func:`default_backend`.

    Any other prefix is part of the model's name (a Windows path, say), unless it is a typo
    away from a backend (``vlm:smollm2``) and the spec is no local path or alias: that is an
    error with the closest backend, not a model that fails to load later, obscurely.
    """
    from .model_sources import find_source
    from .plugins import available, registry

    spec = spec or default_model()
    backend, _, rest = spec.partition(":")
    backends = registry("register_models")
    if rest and backend in backends:
        return backend, rest
    mistyped = difflib.get_close_matches(backend, backends, n=1, cutoff=0.8)
    if rest and mistyped and not (Path(spec).exists() or find_source(spec)):
        raise ScError(f"unknown model backend {backend!r}{available(backend, backends)}")
    return default_backend(), spec


def load_model(spec: str | None = None, **options: Any) -> ModelBackend:
    """Load the model a spec names, with the backend it names (:func:`default_backend` when it
    names none)."""
    from .plugins import lookup

    backend_name, model = parse_model_spec(spec)
    return lookup("register_models", "model backend", backend_name)(model, **options)
