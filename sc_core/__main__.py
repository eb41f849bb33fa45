"""``python -m sc_core``: the ``sc`` command, for launchers that start a module
(``accelerate launch -m sc_core train ...``)."""

from .cli import main

main()
