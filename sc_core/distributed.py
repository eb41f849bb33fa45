"""Training in several processes: which process this is, and the ``accelerate launch`` line.

``sc train --processes N`` re-runs itself under ``accelerate launch``, which starts N copies
of the same command (gloo on CPU, NCCL on GPUs, DeepSpeed ZeRO through an accelerate config
file). Each copy knows its place from the environment torchrun sets (``RANK``, ``WORLD_SIZE``),
so sc reads it there without importing torch. Every copy samples a share of the rollouts and
trains on a share of each batch; only the main process (rank 0) writes files, so that no two
processes race on a checkpoint, a metrics file or a run directory.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import Any

from .errors import ScError

LAUNCHED = "SC_LAUNCHED"
"""Set in the processes ``accelerate launch`` starts for sc, so they do not launch again."""


def rank() -> int:
    """This process's place among the training processes; 0 when there is only one."""
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    """How many training processes there are; 1 outside ``accelerate launch``."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """Whether this process writes the files (the only one, or rank 0)."""
    return rank() == 0


def launched() -> bool:
    """Whether this process is one that :func:`launch_command` started."""
    return os.environ.get(LAUNCHED) == "1"


def per_process(total: int, what: str) -> int:
    """A global batch size as each process's share: ``batch_size`` means the same at any
    number of processes, so 1 and N processes train the same thing."""
    count = world_size()
    if total % count:
        raise ScError(f"{what} ({total}) must divide evenly among {count} training processes")
    return total // count


def shard(items: list[Any]) -> list[Any]:
    """This process's share of ``items``: a contiguous block, the first blocks one longer
    where they do not divide evenly (as TRL's sampler slices a step's episodes)."""
    size, extra = divmod(len(items), world_size())
    start = rank() * size + min(rank(), extra)
    return items[start : start + size + (rank() < extra)]


def gather(items: list[Any]) -> list[Any]:
    """Every process's share of a list, concatenated in rank order, on every process (a
    collective: each process must call it). The inverse of :func:`shard`."""
    if world_size() == 1:
        return items
    import torch.distributed as dist

    parts: list[list[Any]] = [[] for _ in range(world_size())]
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in part]


def wait_for_all() -> None:
    """A barrier: the other processes wait while rank 0 writes (a collective)."""
    if world_size() > 1:
        import torch.distributed as dist

        dist.barrier()


def name_deepspeed_accelerator(cuda: bool) -> None:
    """Where DeepSpeed is installed, transformers' trainer imports it, and on a machine
    without GPUs it says on stdout that it guessed the CPU, which would corrupt ``--json``
    output; named, it guesses nothing and says nothing."""
    os.environ.setdefault("DS_ACCELERATOR", "cuda" if cuda else "cpu")


def launch_command(argv: list[str], processes: int, config_file: str | None = None) -> list[str]:
    """``accelerate launch`` running ``python -m sc_core ARGV`` in ``processes`` processes.

    Without a config file, several processes go through accelerate's ``--multi_gpu`` launcher
    (torchrun), which on a machine without GPUs gives gloo on CPU: accelerate's ``--cpu``
    launcher would start a single process unless MPI is set up. ``config_file`` (an
    ``accelerate config`` file, e.g. DeepSpeed ZeRO) chooses the launcher instead. The port is
    a free one, so that two launches on one machine do not collide."""
    if processes < 1:
        raise ScError(f"--processes must be at least 1, got {processes}")
    if importlib.util.find_spec("accelerate") is None:
        raise ScError("--processes needs accelerate (pip install accelerate)")
    line = [sys.executable, "-m", "accelerate.commands.launch"]
    if config_file:
        if not Path(config_file).is_file():
            raise ScError(f"--accelerate-config {config_file}: no such file")
        line += ["--config_file", config_file]
    else:
        line += ["--mixed_precision", "no", "--dynamo_backend", "no"]
        if processes > 1:
            line.append("--multi_gpu")
    line += ["--num_processes", str(processes), "--num_machines", "1"]
    line += ["--main_process_port", str(free_port())]
    return line + ["-m", "sc_core", *argv]


def free_port() -> int:
    """A TCP port nothing listens on now, for the processes' rendezvous."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
