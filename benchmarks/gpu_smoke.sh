#!/usr/bin/env bash
# GRPO on a lent GPU: step time and tokens/s of sc's grpo backend, then plain TRL GRPOTrainer on
# the same prompts and lengths, with a random-initialised Llama of about 1B parameters and a
# word-level tokenizer built here (the device has no weights and no network; figures are for
# speed, not quality). Single-turn, every completion exactly --tokens long; the first step of each
# is a warm-up. Runs in about 3-4 minutes on an H100/H200.
#
#   prepare here, once:  ../shared/gpu/fetch-wheels.sh pluggy   (trl, datasets, ..., pluggy -> .whl/)
#   on the device:       run(command="bash benchmarks/gpu_smoke.sh", carry=[".whl"], timeout_s=540)
#   check it on CPU:     PYTHON=.venv/bin/python bash benchmarks/gpu_smoke.sh --tiny
#
# Options (after the script name): --tiny (a 2-layer model, short completions), --steps N
# (measured steps, default 2), --tasks N (prompts per step, 4), --num-generations N (4),
# --tokens N (completion length, 256), --skip-plain (sc only).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}
export PYTHONPATH="$SITE:$PWD:$PWD/plugins/sc-trl${PYTHONPATH:+:$PYTHONPATH}"
export TRL_EXPERIMENTAL_SILENCE=1 TOKENIZERS_PARALLELISM=false

if ! "$PYTHON" -c "import trl, datasets, pluggy" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "gpu_smoke: trl/datasets/pluggy missing and no .whl/ here;" \
      "run ../shared/gpu/fetch-wheels.sh pluggy and carry .whl" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl
fi
# sc reads its version from package metadata; the source tree on PYTHONPATH has none.
if ! "$PYTHON" -c "import importlib.metadata as m; m.version('sc-core')" 2>/dev/null; then
  mkdir -p "$SITE/sc_core-0.1.0.dist-info"
  printf 'Metadata-Version: 2.1\nName: sc-core\nVersion: 0.1.0\n' \
    >"$SITE/sc_core-0.1.0.dist-info/METADATA"
fi

exec "$PYTHON" - "$@" <<'PY'
import argparse
import gc
import re
import tempfile
import time
from pathlib import Path

import torch

parser = argparse.ArgumentParser(description="GRPO step time on a GPU: sc vs plain TRL")
parser.add_argument("--tiny", action="store_true", help="a 2-layer model (CPU check)")
parser.add_argument("--steps", type=int, default=2, help="measured steps, after 1 warm-up")
parser.add_argument("--tasks", type=int, default=4)
parser.add_argument("--num-generations", type=int, default=4)
parser.add_argument("--tokens", type=int, default=256)
parser.add_argument("--skip-plain", action="store_true")
args = parser.parse_args()
if args.tiny:
    args.tokens, args.tasks, args.num_generations = min(args.tokens, 16), 2, 2

from sc_core.agent import SYSTEM_PROMPT, Agent, AgentConfig, EpisodeSpec
from sc_core.errors import ScError
from sc_core.models import ModelBackend
from sc_core.sandbox import Limits, SandboxPool, get_sandbox
from sc_core.task import read_tasks
from sc_core.tools import load_toolset
from sc_core.train import TrainJob, get_shaper
from sc_trl.grpo import GRPOBackend, GRPOSettings

CUDA = torch.cuda.is_available()
SPECIALS = ["[PAD]", "[UNK]", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>"]
TEMPLATE = (
    "{%- for m in messages -%}<|{{ m['role'] }}|> {{ m['content'] }} <|end|>\n{% endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|> {% endif -%}"
)
tasks = [item.task for item in read_tasks("evals/calculator.jsonl") if item.task][: args.tasks]
tools = load_toolset("calculator")


def build_model(folder: Path) -> None:
    """A random Llama and a word-level tokenizer over the words of sc's prompts, saved."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specs = [tool.spec() for tool in tools.create().tools.values()]
    corpus = [SYSTEM_PROMPT, str(specs), *(task.instruction for task in tasks)]
    corpus += [re.sub(r"\W", " ", text) for text in corpus] + [str(n) for n in range(1000)]
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=SPECIALS))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", eos_token="<|end|>"
    )
    fast.chat_template = TEMPLATE
    size = (
        dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
        if args.tiny
        else dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                  num_attention_heads=32)
    )  # fmt: skip
    config = LlamaConfig(
        vocab_size=len(fast), num_key_value_heads=size["num_attention_heads"] // 4,
        max_position_embeddings=4096, pad_token_id=fast.pad_token_id,
        eos_token_id=fast.eos_token_id, bos_token_id=None, tie_word_embeddings=True, **size,
    )  # fmt: skip
    with torch.device("cuda" if CUDA else "cpu"):
        model = LlamaForCausalLM(config)
    # min_new_tokens = the limit: every completion has the same length, in sc and in plain TRL
    model.generation_config.min_new_tokens = args.tokens
    model.generation_config.max_new_tokens = args.tokens
    params = sum(p.numel() for p in model.parameters())
    print(f"model: random Llama, {params / 1e9:.2f}B parameters, vocabulary {len(fast)} words")
    model.to(torch.bfloat16).save_pretrained(folder)
    fast.save_pretrained(folder)


class Clock:
    def __init__(self):
        self.marks, self.tokens = [], []

    def mark(self, row):
        if CUDA:
            torch.cuda.synchronize()
        self.marks.append(time.perf_counter())
        self.tokens.append(row.get("completions/mean_length", 0.0))

    def report(self, name: str, started: float) -> float:
        batch = len(tasks) * args.num_generations
        steps = [b - a for a, b in zip([started] + self.marks, self.marks)]
        per_step = sum(steps[1:]) / max(1, len(steps) - 1)
        tokens = sum(self.tokens[1:]) / max(1, len(self.tokens) - 1) * batch
        shown = ", ".join(f"{s:.1f}" for s in steps)
        print(f"{name}: steps {shown} s (first = warm-up incl. start);"
              f" {per_step:.2f} s/step, {tokens:.0f} completion tokens/step,"
              f" {tokens / per_step:.0f} tok/s")  # fmt: skip
        return per_step


class TokenizerOnly(ModelBackend):
    """Enough of a model for the agent to render prompts."""

    name = "tokenizer-only"

    def __init__(self, tokenizer):
        super().__init__("tokenizer-only")
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, params):
        raise NotImplementedError


def peak() -> str:
    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB peak" if CUDA else "CPU"


def run_sc(folder: Path) -> float:
    try:
        sandbox = get_sandbox(None)
    except ScError:
        sandbox = get_sandbox("subprocess")  # no bubblewrap on the device
    agent = AgentConfig(max_turns=1, max_new_tokens=args.tokens, max_total_tokens=4096)
    settings = GRPOSettings(
        steps=args.steps + 1, batch_size=len(tasks), num_generations=args.num_generations,
        gradient_checkpointing=not args.tiny,
    )  # fmt: skip
    clock = Clock()
    with SandboxPool(sandbox, Limits(), 4) as pool, tempfile.TemporaryDirectory() as out:
        job = TrainJob(tasks, str(folder), Path(out), pool, get_shaper("binary"), agent=agent)
        job.on_metrics = clock.mark
        started = time.perf_counter()
        GRPOBackend(settings).train(job)
    result = clock.report("sc grpo  ", started)
    print(f"  ({peak()}, sandbox {type(sandbox).__name__})")
    return result


def run_plain(folder: Path) -> float:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    renderer = Agent(TokenizerOnly(tokenizer))
    prompts = [
        tokenizer.decode(renderer.start(EpisodeSpec(t.instruction, tools.create())).episode.prompt_ids)
        for t in tasks
    ]
    clock = Clock()

    class Mark(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                clock.mark(logs)

    with tempfile.TemporaryDirectory() as scratch:
        config = GRPOConfig(
            output_dir=scratch, max_steps=args.steps + 1,
            per_device_train_batch_size=len(tasks) * args.num_generations,
            num_generations=args.num_generations, learning_rate=1e-6,
            lr_scheduler_type="constant", max_completion_length=args.tokens,
            generation_kwargs={"min_new_tokens": args.tokens}, logging_steps=1,
            save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=not CUDA,
            bf16=CUDA, gradient_checkpointing=not args.tiny,
        )  # fmt: skip
        started = time.perf_counter()
        trainer = GRPOTrainer(
            model=AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32),
            reward_funcs=[lambda completions, **kw: [float(i % 2) for i in range(len(completions))]],
            args=config,
            train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
            processing_class=tokenizer,
            callbacks=[Mark()],
        )
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    result = clock.report("plain TRL", started)
    print(f"  ({peak()})")
    return result


device = torch.cuda.get_device_name() if CUDA else "CPU"
print(f"device: {device}; torch {torch.__version__}")
print(f"shape: {len(tasks)} prompts x {args.num_generations} generations x {args.tokens} tokens")
with tempfile.TemporaryDirectory() as folder:
    build_model(Path(folder))
    sc = run_sc(Path(folder))
    if not args.skip_plain:
        gc.collect()
        if CUDA:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        plain = run_plain(Path(folder))
        print(f"sc / plain step time: {sc / plain:.2f} (target <= 1.15)")
PY
