"""GRPO (sc_trl.grpo): what the rollout hands TRL (token ids, env masks, rewards), the settings,
and real training runs of the embedded model on CPU (a normal run; LoRA with a broken toolset)."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest
from sc_trl.grpo import GRPOBackend, GRPOSettings, Rollout, TRLvLLMBackend, sc_reward, to_trl

from sc_core.agent import AgentConfig, Episode
from sc_core.errors import ScError
from sc_core.evaluate import Scored
from sc_core.models import SamplingParams
from sc_core.tools import Tool, Toolset, ToolsetSpec
from sc_core.train import Sample, TrainJob, build_config, get_backend

TINY = AgentConfig(max_turns=2, max_new_tokens=12, system_prompt="Solve the task.")
"""Two short turns and a short prompt: CPU training time grows with every token."""


def alternating():
    """A shaper that rewards every other episode it is asked about: a group of 2 gets 0 and 1,
    so the advantages, and the gradient, are not zero. (It is not asked about an episode whose
    verifier failed: that one is 0.)"""
    counter = itertools.count()
    return lambda score, episode: float(next(counter) % 2)


def broken_toolset() -> ToolsetSpec:
    def explode(seed: int) -> None:
        raise RuntimeError("the environment is down")

    def noop(x: int) -> int:
        """Do nothing."""
        return x

    return ToolsetSpec("broken", lambda: Toolset([Tool.from_function(noop)], reset=explode))


def make_job(tasks, pool, out: Path, **fields) -> TrainJob:
    return TrainJob(tasks, str(fields.pop("model")), out, pool, fields.pop("shaper"), **fields)


def weights_differ(left: Path, right: Path) -> bool:
    from transformers import AutoModelForCausalLM

    a = AutoModelForCausalLM.from_pretrained(left).state_dict()
    b = AutoModelForCausalLM.from_pretrained(right).state_dict()
    assert a.keys() == b.keys()
    return any(not a[key].equal(b[key]) for key in a)


# -- what TRL gets ---------------------------------------------------------------------------------


def sample(completion: list[int], mask: list[int], reward: float, prompt=(1, 2)) -> Sample:
    episode = Episode("t", 0, [], list(prompt), completion, mask, [0.0] * len(completion))
    return Sample(Scored("t", episode, reward), reward)


def test_to_trl_keeps_ids_and_masks_and_pads_an_empty_episode():
    samples = [sample([5, 6, 7, 8], [1, 0, 0, 1], 1.0), sample([], [], 0.0, prompt=())]
    out = to_trl(samples, filler=99, logprobs=False)
    assert out["prompt_ids"] == [[1, 2], [99]]
    assert out["completion_ids"] == [[5, 6, 7, 8], [99]]
    assert out["env_mask"] == [[1, 0, 0, 1], [0]]  # the filler teaches nothing
    assert out["logprobs"] is None
    assert out["sc_reward"] == [1.0, 0.0]
    assert to_trl(samples, 99, logprobs=True)["logprobs"] == [[0.0] * 4, [0.0]]
    assert sc_reward([None, None], out["sc_reward"]) == [1.0, 0.0]


def test_the_vllm_adapter_reads_trls_engine_output():
    """TRL's VLLMGeneration.generate returns (prompt_ids, completion_ids, logprobs, token ids),
    logprobs with one entry per token per requested top-k (the sampled token's first)."""

    class Engine:
        max_completion_length = 512

        def generate(self, prompts, images, num_generations):
            assert (images, num_generations, self.max_completion_length) == (None, 1, 3)
            return (
                prompts,
                [[5, 6, 0], [7, 8, 9]],
                [[[-0.1], [-0.2], [-0.3]], [[-1], [-2], [-3]]],
                None,
            )

    tokenizer = SimpleNamespace(decode=lambda ids, skip_special_tokens: " ".join(map(str, ids)))
    backend = TRLvLLMBackend(Engine(), tokenizer, stop={0})
    first, second = backend.generate([[1], [2]], SamplingParams(max_new_tokens=3))
    assert (first.token_ids, first.logprobs, first.finish_reason) == (
        [5, 6, 0],
        [-0.1, -0.2, -0.3],
        "stop",
    )
    assert (second.text, second.finish_reason) == ("7 8 9", "length")


def trl_prompts(tasks, num_generations: int) -> list[list[dict]]:
    """Prompts as TRL's sampler hands them to rollout_func: each repeated, adjacent."""
    return [
        [{"role": "user", "content": task.instruction, "sc_task": index}]
        for index, task in enumerate(tasks)
        for _ in range(num_generations)
    ]


def test_rollout_func_returns_one_episode_per_prompt_with_its_mask(
    calculator_tasks, add_toolset, sandbox_pool, model_dir, tmp_path
):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.train()
    trainer = SimpleNamespace(model=model, accelerator=SimpleNamespace(unwrap_model=lambda m: m))
    tasks = calculator_tasks[:2]
    seen: list[list[Sample]] = []
    job = make_job(
        tasks, sandbox_pool, tmp_path, model=model_dir, shaper=alternating(),
        tools=add_toolset, agent=TINY, on_samples=seen.append,
    )  # fmt: skip
    out = Rollout(job, tokenizer, GRPOSettings())(trl_prompts(tasks, 2), trainer)

    assert model.training  # sampled in eval mode, then put back
    (samples,) = seen
    assert [s.scored.task_id for s in samples] == [tasks[0].id] * 2 + [tasks[1].id] * 2
    assert out["sc_reward"] == [s.reward for s in samples], [s.scored.error for s in samples]
    assert out["logprobs"] is None
    for i, s in enumerate(samples):
        assert out["prompt_ids"][i] == s.episode.prompt_ids
        assert out["completion_ids"][i] == s.episode.completion_ids
        assert out["env_mask"][i] == s.episode.completion_mask
        assert len(out["env_mask"][i]) == len(out["completion_ids"][i])
    if any(s.episode.turns > 1 for s in samples):  # a second turn follows masked glue
        assert any(0 in mask for mask in out["env_mask"])

    # a toolset that cannot even reset: zero rewards and one masked token, no exception
    broken = make_job(
        tasks, sandbox_pool, tmp_path, model=model_dir, shaper=lambda s, e: 1.0,
        tools=broken_toolset(), agent=TINY,
    )  # fmt: skip
    out = Rollout(broken, tokenizer, GRPOSettings())(trl_prompts(tasks, 2), trainer)
    assert out["sc_reward"] == [0.0] * 4
    assert out["env_mask"] == [[0]] * 4
    assert out["completion_ids"] == [[tokenizer.eos_token_id]] * 4


# -- settings --------------------------------------------------------------------------------------


def test_the_backend_is_registered_with_its_settings():
    backend = get_backend("grpo", {"steps": "3", "lora": "true", "learning_rate": "1e-5"})
    assert isinstance(backend, GRPOBackend)
    assert (backend.config.steps, backend.config.lora, backend.config.learning_rate) == (
        3,
        True,
        1e-5,
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_gens": "4"}, "no setting 'num_gens'"),
        ({"steps": "many"}, "expected int"),
        ({"num_generations": "1"}, "at least 2"),
        ({"temperature": "0"}, "above 0"),
        ({"vllm_mode": "remote"}, "colocate or server"),
        ({"learning_rate": "-1"}, "positive"),
    ],
)
def test_bad_settings_are_one_line_errors(options, message):
    with pytest.raises(ScError, match=message):
        build_config(GRPOSettings, options)


def test_vllm_on_cpu_is_a_clear_error(calculator_tasks, sandbox_pool, tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    job = make_job(calculator_tasks[:1], sandbox_pool, tmp_path, model="smollm2", shaper=None)
    with pytest.raises(ScError, match="use_vllm=true needs a CUDA GPU"):
        GRPOBackend(GRPOSettings(use_vllm=True)).train(job)


# -- real training ---------------------------------------------------------------------------------


def test_training_saves_a_changed_checkpoint_and_reports_each_step(
    calculator_tasks, add_toolset, sandbox_pool, model_dir, tmp_path
):
    from transformers import AutoModelForCausalLM

    rows: list[dict] = []
    batches: list[list[Sample]] = []
    job = make_job(
        calculator_tasks[:2], sandbox_pool, tmp_path / "out", model=model_dir,
        shaper=alternating(), tools=add_toolset, agent=TINY,
        on_metrics=rows.append, on_samples=batches.append,
    )  # fmt: skip
    settings = GRPOSettings(steps=2, batch_size=1, num_generations=2, learning_rate=1e-4)
    out = GRPOBackend(settings).train(job)

    assert out == tmp_path / "out"
    assert (out / "config.json").is_file() and (out / "tokenizer.json").is_file()
    AutoModelForCausalLM.from_pretrained(out)
    assert weights_differ(model_dir, out)
    assert [row["step"] for row in rows] == [1, 2]
    for row in rows:
        assert row["reward"] == pytest.approx(0.5)
        assert isinstance(row["loss"], float)
    assert [len(batch) for batch in batches] == [2, 2]


def test_a_broken_toolset_trains_on_zero_rewards_and_lora_saves_a_merged_model(
    calculator_tasks, sandbox_pool, model_dir, tmp_path
):
    from transformers import AutoModelForCausalLM

    rows: list[dict] = []
    job = make_job(
        calculator_tasks[:2], sandbox_pool, tmp_path / "out", model=model_dir,
        shaper=lambda score, episode: 1.0, tools=broken_toolset(), agent=TINY,
        on_metrics=rows.append,
    )  # fmt: skip
    settings = GRPOSettings(steps=1, num_generations=2, lora=True, lora_r=4)
    out = GRPOBackend(settings).train(job)
    assert rows[0]["reward"] == 0.0
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    AutoModelForCausalLM.from_pretrained(out)  # a plain model: the adapters were merged
