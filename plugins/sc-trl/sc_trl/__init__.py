"""sc's RL backends: ``grpo`` (TRL's GRPOTrainer) and ``rft`` (rejection fine-tuning).

trl, torch and transformers are imported when a backend trains, not when sc starts.
"""

from sc_core import hookimpl

from .grpo import GRPOBackend
from .rft import RFTBackend


@hookimpl
def register_rl_backends(register):
    register("grpo", GRPOBackend)
    register("rft", RFTBackend)
