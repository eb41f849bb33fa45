"""Saving what a backend trained: the one checkpoint format both backends write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sc_core import distributed


def save(model: Any, tokenizer: Any, out_dir: str | Path) -> Path:
    """Weights, config and tokenizer in ``out_dir``, which ``sc eval --model DIR`` and plain
    transformers load. Under ``accelerate launch`` every process holds the same weights, so
    rank 0 alone writes them and the others wait until it has."""
    out = Path(out_dir)
    if distributed.is_main():
        out.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    distributed.wait_for_all()
    return out
