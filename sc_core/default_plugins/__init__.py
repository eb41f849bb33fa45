"""Built-in plugins, registered exactly as an external plugin would be."""

import json
from pathlib import Path

SEED_TASKS = Path(__file__).with_name("seed_tasks")


def seed_examples(toolset: str) -> list[dict]:
    """The example tasks a built-in toolset ships for the ``seeded`` challenger."""
    lines = (SEED_TASKS / f"{toolset}.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]
