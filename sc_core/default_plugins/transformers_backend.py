"""The ``transformers`` inference backend: batched generation, CPU or GPU.

Each prompt's longest prefix whose key/value states are known (from the previous call, or
shared by the batch) is not computed again; see ``sc_core.prefix_cache``. The rest is padded
in the middle, between those states and the new tokens. torch and transformers are imported
when a model is loaded, not when sc starts.
"""

from __future__ import annotations

import os
from functools import cache, cached_property
from typing import Any

from sc_core import hookimpl
from sc_core.errors import ScError
from sc_core.model_sources import load_error
from sc_core.models import Generation, ModelBackend, SamplingParams, resolve_model
from sc_core.prefix_cache import BLOCK, Cached, PrefixCache


@cache
def cache_name() -> str:
    """What transformers calls a model's key/value cache, in arguments and outputs: ``cache``
    since 5.2x, ``past_key_values`` before (the old name still works, with a warning, until
    6.0)."""
    from transformers.modeling_outputs import CausalLMOutputWithPast

    fields = CausalLMOutputWithPast.__dataclass_fields__
    return "cache" if "cache" in fields else "past_key_values"


class TransformersBackend(ModelBackend):
    """A Hugging Face causal LM in this process; also what the RL backends train."""

    name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        batch_size: int = 16,
        device: str | None = None,
        prefix_cache_gib: float = 2.0,
        **options,
    ):
        """``prefix_cache_gib``: memory for the key/value states kept between calls (0: none
        are kept; prompts in one batch still share their common prefix)."""
        super().__init__(model, **options)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # sc draws its own progress; a second bar garbles it
        self.path = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
            loaded = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype)
        except (OSError, ValueError) as error:
            raise load_error(model, error) from None
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self.model = loaded.to(self.device)
        self.model.eval()
        self.batch_size = batch_size
        self.prefix_cache = PrefixCache(int(float(prefix_cache_gib) * 2**30))

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, batch_size: int = 16) -> TransformersBackend:
        """A backend over a model already in memory (the one a trainer is updating), so
        rollouts always sample from the current weights."""
        backend = cls.__new__(cls)
        ModelBackend.__init__(backend, getattr(model, "name_or_path", "") or "in-memory")
        backend.path, backend.model, backend.batch_size = backend.model_id, model, batch_size
        backend.device = str(model.device)
        backend._tokenizer = tokenizer
        backend.prefix_cache = PrefixCache(2 * 2**30)
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return backend

    def _weights_version(self) -> int:
        """Changes whenever a parameter is modified in place (an optimizer step, a LoRA merge),
        which makes cached key/value states stale."""
        return sum(p._version for p in self.model.parameters())

    @cached_property
    def reuses_states(self) -> bool:
        """Whether the model's key/value cache is one full-attention DynamicLayer per layer,
        the only kind whose states can be cut per sequence and reused."""
        from transformers.cache_utils import DynamicCache, DynamicLayer

        try:
            layers = DynamicCache(config=self.model.config).layers
        except Exception:  # a model whose config DynamicCache does not understand
            return False
        return bool(layers) and all(type(layer) is DynamicLayer for layer in layers)

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def stop_ids(self) -> set[int]:
        """Token ids that end a turn: the tokenizer's and the generation config's EOS ids."""
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
        return ids | {self._tokenizer.eos_token_id}

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        if params.regex is not None:
            raise ScError("the transformers backend cannot constrain decoding; use vllm:MODEL")
        import torch

        if params.seed is not None:  # once per call: per batch, equal prompts would repeat
            torch.manual_seed(params.seed)
        reuse = self.reuses_states
        if reuse:
            self.prefix_cache.begin(self._weights_version())
        results: list[Generation] = []
        with torch.inference_mode():
            for start in range(0, len(prompts), self.batch_size):
                batch = prompts[start : start + self.batch_size]
                results += self._generate_batch(batch, params, reuse)
        if reuse:
            self.prefix_cache.end()
        return results

    def _known_prefixes(self, prompts: list[list[int]]) -> list[tuple[int, Cached | None]]:
        """For each prompt, the length of its prefix whose states are known, and where they are:
        the previous call's sequences, else the prefix the remaining prompts share, computed
        here once."""
        known = [self.prefix_cache.lookup(prompt) for prompt in prompts]
        rest = [i for i, (length, _) in enumerate(known) if length == 0]
        if len(rest) > 1:
            shared = os.path.commonprefix([prompts[i] for i in rest])
            shared = shared[: min(len(prompts[i]) for i in rest) - 1]
            if len(shared) >= BLOCK:
                entry = self._prefill(shared)
                for i in rest:
                    known[i] = (len(shared), entry)
        return known

    def _prefill(self, ids: list[int]) -> Cached:
        import torch

        out = self.model(input_ids=torch.tensor([ids], device=self.device), use_cache=True)
        layers = getattr(out, cache_name()).layers
        return Cached(ids, [(layer.keys[0], layer.values[0]) for layer in layers])

    def _past(self, known: list[tuple[int, Cached | None]]) -> Any:
        """The known states as one batch cache, each row's left-padded to the longest."""
        from transformers.cache_utils import DynamicCache

        width = max(length for length, _ in known)
        entry = next(entry for _, entry in known if entry is not None)
        layers = []
        for layer, (key, value) in enumerate(entry.states):
            heads, _, dim = key.shape
            keys = key.new_zeros(len(known), heads, width, dim)
            values = value.new_zeros(len(known), heads, width, value.shape[-1])
            for row, (length, cached) in enumerate(known):
                if length:
                    keys[row, :, width - length :] = cached.states[layer][0][:, :length]
                    values[row, :, width - length :] = cached.states[layer][1][:, :length]
            layers.append((keys, values))
        return DynamicCache(ddp_cache_data=layers)

    def _keep(
        self,
        prompts: list[list[int]],
        generated: list[list[int]],
        cache: Any,
        mask: list[list[int]],
        width: int,
    ) -> None:
        """Store each sequence's states for the next call: the prompt and what was generated,
        except a last token never fed back (its states were not computed)."""
        import torch

        if cache is None:
            return
        steps = cache.get_seq_length() - width + 1
        for row, (prompt, ids) in enumerate(zip(prompts, generated, strict=True)):
            kept = min(len(ids), steps - 1)
            valid = [i for i, flag in enumerate(mask[row]) if flag]
            valid += range(width, width + kept)
            index = torch.tensor(valid, device=self.device)
            states = [
                (layer.keys[row].index_select(1, index), layer.values[row].index_select(1, index))
                for layer in cache.layers
            ]
            self.prefix_cache.store(Cached(prompt + ids[:kept], states))

    def _generate_batch(
        self, prompts: list[list[int]], params: SamplingParams, reuse: bool
    ) -> list[Generation]:
        import torch

        pad = self._tokenizer.pad_token_id
        known = self._known_prefixes(prompts) if reuse else [(0, None)] * len(prompts)
        past = max(length for length, _ in known)
        tails = [prompt[length:] for prompt, (length, _) in zip(prompts, known, strict=True)]
        longest = max(len(tail) for tail in tails)
        width = past + longest
        rows, mask = [], []
        for (length, _), tail in zip(known, tails, strict=True):
            rows.append([pad] * (width - len(tail)) + tail)
            gap = longest - len(tail)
            mask.append([0] * (past - length) + [1] * length + [0] * gap + [1] * len(tail))
        input_ids = torch.tensor(rows, device=self.device)
        attention = torch.tensor(mask, device=self.device)
        cache = self._past(known) if past else None
        sampling: dict[str, Any] = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            sampling.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        stop = self.stop_ids()
        out = self.model.generate(
            input_ids=input_ids,
            attention_mask=attention,
            max_new_tokens=params.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=sorted(stop),
            return_dict_in_generate=True,
            output_scores=params.logprobs,
            use_cache=True,
            **{cache_name(): cache},
            **sampling,
        )
        new = out.sequences[:, width:]
        scores = [None] * len(prompts)
        if params.logprobs:
            scores = self.model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            ).tolist()
        results, generated = [], []
        for row, row_scores in zip(new.tolist(), scores, strict=True):
            end = next((i + 1 for i, token in enumerate(row) if token in stop), None)
            ids = row[:end] if end else row
            generated.append(ids)
            results.append(
                Generation(
                    token_ids=ids,
                    text=self._tokenizer.decode(ids, skip_special_tokens=True),
                    logprobs=row_scores[: len(ids)] if row_scores else None,
                    finish_reason="stop" if end else "length",
                )
            )
        if reuse:
            self._keep(prompts, generated, getattr(out, cache_name()), mask, width)
        return results


@hookimpl
def register_models(register):
    register("transformers", TransformersBackend)
