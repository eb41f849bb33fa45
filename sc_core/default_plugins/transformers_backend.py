"""The ``transformers`` inference backend: batched generation with left padding, CPU or GPU.

torch and transformers are imported when a model is loaded, not when sc starts.
"""

from __future__ import annotations

from typing import Any

from sc_core import hookimpl
from sc_core.errors import ScError
from sc_core.models import Generation, ModelBackend, SamplingParams, resolve_model


class TransformersBackend(ModelBackend):
    """A Hugging Face causal LM in this process; also what the RL backends train."""

    name = "transformers"

    def __init__(self, model: str, *, batch_size: int = 16, device: str | None = None, **options):
        super().__init__(model, **options)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # sc draws its own progress; a second bar garbles it
        self.path = resolve_model(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=dtype).to(self.device)
        self.model.eval()
        self.batch_size = batch_size

    @classmethod
    def from_loaded(cls, model: Any, tokenizer: Any, batch_size: int = 16) -> TransformersBackend:
        """A backend over a model already in memory (the one a trainer is updating), so
        rollouts always sample from the current weights."""
        backend = cls.__new__(cls)
        ModelBackend.__init__(backend, getattr(model, "name_or_path", "") or "in-memory")
        backend.path, backend.model, backend.batch_size = backend.model_id, model, batch_size
        backend.device = str(model.device)
        backend._tokenizer = tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        return backend

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
        if params.seed is not None:  # once per call: per batch, equal prompts would repeat
            import torch

            torch.manual_seed(params.seed)
        results: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            results += self._generate_batch(prompts[start : start + self.batch_size], params)
        return results

    def _generate_batch(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        import torch

        pad = self._tokenizer.pad_token_id
        width = max(len(prompt) for prompt in prompts)
        input_ids = torch.tensor(
            [[pad] * (width - len(p)) + p for p in prompts], device=self.device
        )
        attention = torch.tensor(
            [[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=self.device
        )
        sampling: dict[str, Any] = {"do_sample": params.temperature > 0}
        if params.temperature > 0:
            sampling.update(temperature=params.temperature, top_p=params.top_p, top_k=0)
        stop = self.stop_ids()
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=params.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=sorted(stop),
                return_dict_in_generate=True,
                output_scores=params.logprobs,
                **sampling,
            )
        new = out.sequences[:, width:]
        scores = [None] * len(prompts)
        if params.logprobs:
            scores = self.model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            ).tolist()
        results = []
        for row, row_scores in zip(new.tolist(), scores, strict=True):
            end = next((i + 1 for i, token in enumerate(row) if token in stop), None)
            ids = row[:end] if end else row
            results.append(
                Generation(
                    token_ids=ids,
                    text=self._tokenizer.decode(ids, skip_special_tokens=True),
                    logprobs=row_scores[: len(ids)] if row_scores else None,
                    finish_reason="stop" if end else "length",
                )
            )
        return results


@hookimpl
def register_models(register):
    register("transformers", TransformersBackend)
