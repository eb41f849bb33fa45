"""Quiet training: the one place both backends turn the libraries' chatter down."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """No progress bars (datasets, loading and saving weights), no transformers info chatter
    and no TRL experimental-API warning (``rollout_func``) while training: sc prints its own
    progress, and these would bury it. The previous settings come back afterwards."""
    import datasets
    import transformers
    from transformers.utils import logging as hf_logging

    datasets_bars_off = datasets.utils.are_progress_bars_disabled()
    hf_bars_on = hf_logging.is_progress_bar_enabled()
    verbosity = transformers.logging.get_verbosity()
    datasets.utils.disable_progress_bars()
    hf_logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*rollout_func.*")
            yield
    finally:
        transformers.logging.set_verbosity(verbosity)
        if hf_bars_on:
            hf_logging.enable_progress_bar()
        if not datasets_bars_off:
            datasets.utils.enable_progress_bars()
