"""Two real ``vllm serve`` processes behind one ``openai`` spec (skipped without vLLM): a new
checkpoint reloads into both, ``sc run`` trains and then evaluates its checkpoint on both, and
agent episodes spread over both survive one being killed.

Both servers start at once for the module (about a minute on two CPU cores: small context,
1 GiB KV cache, ``--enforce-eager``), each its own process group, killed whole at teardown.
They run with ``VLLM_SERVER_DEV_MODE=1`` and sc's worker extension, which weight reloading
needs. The kill test runs
last: it leaves one server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from sc_core.agent import Agent, AgentConfig, EpisodeSpec
from sc_core.models import SamplingParams, load_model, resolve_model
from sc_core.task import read_tasks
from sc_core.tools import load_toolset

EVALS = Path(__file__).resolve().parent.parent / "evals" / "calculator.jsonl"
RELOADABLE = ["--max-num-seqs", "16", "--worker-extension-cls", "sc_vllm.server.WeightReload"]
"""What weight reloading needs of a server, with VLLM_SERVER_DEV_MODE=1."""


@pytest.fixture(scope="module")
def pair(vllm_servers, tmp_path_factory):
    """Two servers of smollm2; yields [(url, process), (url, process)]."""
    env = {"VLLM_SERVER_DEV_MODE": "1", "VLLM_CPU_KVCACHE_SPACE": "1"}
    with vllm_servers(2, tmp_path_factory.mktemp("vllm"), RELOADABLE, env) as servers:
        yield servers


def chat(tokenizer, text: str) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.fixture(scope="module")
def changed_checkpoint(tmp_path_factory) -> str:
    """SmolLM2 with every weight nudged: a checkpoint that generates differently."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model("smollm2")
    folder = tmp_path_factory.mktemp("changed")
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in model.parameters():
            weight.add_(0.02 * torch.randn(weight.shape, generator=generator))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return str(folder)


GREEDY = SamplingParams(max_new_tokens=12, temperature=0.0, logprobs=True)


def scored(checkpoint: str, prompt: list[int], ids: list[int]) -> list[float]:
    """Each of ``ids``' log-probabilities after ``prompt``, by the checkpoint in transformers."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    with torch.no_grad():
        logits = model(torch.tensor([prompt + ids])).logits[0, len(prompt) - 1 : -1]
    return logits.log_softmax(-1).gather(1, torch.tensor(ids)[:, None])[:, 0].tolist()


def test_a_new_checkpoint_is_served_by_both_servers(pair, changed_checkpoint):
    urls = ",".join(url for url, _ in pair)
    original = load_model(f"openai:smollm2@{urls}")
    prompt = chat(original.tokenizer, "Write one sentence about the sea.")
    before = original.generate([prompt] * 4, GREEDY)
    assert len({g.text for g in before}) == 1
    assert all(original.endpoints.answered[url] for url, _ in pair)

    changed = load_model(f"openai:{changed_checkpoint}@{urls}")
    assert changed.served_name == "smollm2"
    after = changed.generate([prompt] * 4, GREEDY)
    assert all(changed.endpoints.answered[url] for url, _ in pair)  # both servers answered
    assert len({g.text for g in after}) == 1 and after[0].text != before[0].text
    # What the servers report is what the new weights compute, not the old ones.
    ids, reported = after[0].token_ids, after[0].logprobs
    assert reported == pytest.approx(scored(changed_checkpoint, prompt, ids), abs=1e-2)
    old = scored(resolve_model("smollm2"), prompt, ids)
    assert max(abs(a - b) for a, b in zip(old, reported, strict=True)) > 0.1

    back = load_model(f"openai:{resolve_model('smollm2')}@{urls}")
    assert {g.text for g in back.generate([prompt] * 4, GREEDY)} == {before[0].text}


def test_sc_run_trains_then_serves_the_checkpoint_from_both_servers(pair, tmp_path):
    urls = ",".join(url for url, _ in pair)
    lines = EVALS.read_text(encoding="utf-8").splitlines()
    (tmp_path / "train.jsonl").write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    (tmp_path / "eval.jsonl").write_text("\n".join(lines[3:5]) + "\n", encoding="utf-8")
    sc = Path(sys.executable).parent / "sc"
    result = subprocess.run(
        [
            str(sc),
            "run",
            "--tools",
            "calculator",
            "--model",
            f"openai:smollm2@{urls}",
            "--tasks",
            "train.jsonl",
            "--eval-tasks",
            "eval.jsonl",
            "--tasks-per-iteration",
            "1",
            "--eval-k",
            "1",
            "--max-turns",
            "2",
            "--max-new-tokens",
            "32",
            "--name",
            "r",
            "--option",
            "min_reward=0",
            "--option",
            "k=1",
        ],  # fmt: skip
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "SC_BACKEND": "transformers"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = str((tmp_path / "runs/r/checkpoints/iter-001").resolve())
    for url, _ in pair:  # the evaluation after training ran on the new weights, on both
        with urllib.request.urlopen(url.removesuffix("/v1") + "/weight_info") as answer:
            assert json.load(answer)["weight_version"] == checkpoint
    assert (tmp_path / "runs/r/iterations/001/eval-after.json").is_file()


def test_episodes_survive_a_server_killed_mid_run(pair):
    (first, _), (second, victim) = pair
    model = load_model(f"openai:smollm2@{first},{second}")
    tasks = [line.task for line in read_tasks(EVALS) if line.task][:12]
    tools = load_toolset("calculator")
    specs = [EpisodeSpec(t.instruction, tools.create(), t.seed, t.id) for t in tasks]
    config = AgentConfig(max_turns=3, max_new_tokens=40, temperature=0.7)
    answered, at_kill = model.endpoints.answered, []

    def kill_once_both_answered() -> None:
        # Between two turns no request is in flight; wait for one, so that the kill cuts it.
        in_flight = model.endpoints.in_flight
        while answered[first] < 3 or answered[second] < 3 or in_flight[second] == 0:
            time.sleep(0.01)
        at_kill.extend([in_flight[second], answered[first]])
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=30)

    killer = threading.Thread(target=kill_once_both_answered, daemon=True)
    killer.start()
    episodes = Agent(model, config).run(specs)
    killer.join(timeout=60)
    assert victim.poll() is not None, "the server was not killed before the run ended"
    assert at_kill[0] > 0  # requests in flight on it were retried on the other
    assert len(episodes) == len(specs)
    assert all(e.error is None and e.finish != "error" and e.turns >= 1 for e in episodes)
    assert list(model.endpoints.down) == [second]
    assert answered[second] >= 3
    assert answered[first] > at_kill[1]  # the survivor went on answering after the kill
