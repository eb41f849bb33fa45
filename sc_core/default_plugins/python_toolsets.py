"""The ``py:`` scheme: a toolset from a Python module, file or attribute (also the default)."""

from sc_core import hookimpl
from sc_core.tools import python_toolset


@hookimpl
def register_toolsets(register):
    register("py:", python_toolset)
