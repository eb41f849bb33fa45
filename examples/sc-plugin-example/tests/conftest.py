"""Run the example's tests from a checkout too: its package is importable without installing it.

``pip_install`` marks the slow test that builds and installs the distribution for real.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

DISTRIBUTION = Path(__file__).resolve().parents[1]

if importlib.util.find_spec("sc_plugin_example") is None:
    sys.path.insert(0, str(DISTRIBUTION))


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "pip_install: builds and pip-installs a distribution into a temporary folder (slow: a "
        "wheel build, and a download of its build backend unless the environment has it); "
        'deselect with -m "not pip_install"',
    )
