"""sc: Self-Challenging tool-using agents."""

from .errors import ScError
from .hookspecs import hookimpl

__all__ = ["ScError", "hookimpl"]
