"""The plugin contract: every hook sc calls, one docstring each.

Registration hooks receive a ``register`` callable; a plugin calls it once per thing it adds.
Names must be unique across plugins: a clash is reported and the later registration is ignored.
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("sc")
hookimpl = HookimplMarker("sc")


@hookspec
def register_toolsets(register):
    """Register named toolsets and toolset-spec schemes.

    ``register(name, factory)``:

    - a plain name (``"calculator"``): ``factory()`` returns a fresh :class:`sc_core.tools.Toolset`;
    - a name ending in ``:`` is a scheme (``"mcp:"``): ``factory(rest)`` receives the spec after the
      colon and returns a zero-argument toolset factory, or raises :class:`sc_core.errors.ScError`
      with a one-line reason.
    """


@hookspec
def register_challengers(register):
    """Register challenger strategies: ``register(name, strategy_class)``.

    A strategy explores a toolset with a model and writes candidate Code-as-Tasks.
    """


@hookspec
def register_sandboxes(register):
    """Register verifier sandboxes: ``register(name, sandbox_class)``.

    ``sandbox_class`` subclasses :class:`sc_core.sandbox.Sandbox`; it starts the isolated worker
    processes that run model-written code.
    """


@hookspec
def register_reward_shapers(register):
    """Register reward shapers: ``register(name, shaper)``.

    A shaper turns a verifier score and the episode that earned it into the training reward.
    """


@hookspec
def register_rl_backends(register):
    """Register trainers: ``register(name, backend_class)``, for example ``grpo`` or ``rft``."""


@hookspec
def register_models(register):
    """Register inference backends: ``register(name, backend_class)``.

    A backend generates token ids (and log-probabilities where it can) for chat prompts.
    """


@hookspec
def register_model_sources(register):
    """Register model aliases: ``register(alias, source)``, ``source`` a
    :class:`sc_core.model_sources.ModelSource`.

    A source says where the alias's weights come from: files inside installed pip packages (one
    GGUF file, or its parts, joined and verified), a local path, or a Hugging Face hub id. Any
    backend then loads the alias (``--model ALIAS``, ``vllm:ALIAS``), and ``sc models`` lists it
    with whether its weights are on this machine.
    """


@hookspec
def register_commands(cli):
    """Add commands to the ``sc`` click group ``cli``."""
