"""For every test directory: specs without a backend run on transformers, the suite's fast and
deterministic path, even where vLLM is installed (tests of vLLM name it: ``vllm:smollm2``)."""

import os

os.environ.setdefault("SC_BACKEND", "transformers")
