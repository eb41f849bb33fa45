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
    """Register challenger strategies: ``register(name, strategy_class)``; ``--strategy NAME``
    (``sc challenge``, ``sc run``) picks one.

    A strategy writes candidate Code-as-Tasks for a toolset, usually with a model.
    ``strategy_class`` subclasses :class:`sc_core.challenge.Challenger`:

    - ``name``: the registered name; it is recorded in every task's provenance.
    - ``needs_model`` (default True): False for a strategy that writes without a model (from
      templates, say); sc then loads none.
    - ``__init__(model, config)``, inherited: sc builds one instance per challenge with the
      :class:`~sc_core.models.ModelBackend` that writes (None when ``needs_model`` is False)
      and a :class:`~sc_core.challenge.ChallengeConfig` (sampling, exploration limits,
      ``examples``, ``chunk``), kept as ``self.model`` and ``self.config``.
    - ``shown(toolset, config)``, a classmethod (default: none): the example tasks the strategy
      shows its model; the filter rejects a candidate that copies one.
    - ``config.guidance``: what kind of task to write, in words (``sc run --curriculum``: which
      recent tasks the executor found too easy, learnable or too hard). A strategy adds it to
      every writing prompt; ``cat_prompt(instance, seed, config.guidance)`` does.
    - ``attempt(toolset, seeds, on_step=None) -> list[Attempt]``: ``toolset`` is a
      :class:`~sc_core.tools.ToolsetSpec` (``toolset.create()`` builds a fresh instance; close
      the ones you create); ``seeds`` is a chunk of at most ``config.chunk`` of the challenge's
      seeds, each the seed a task's toolset is reset with. Return one
      :class:`~sc_core.challenge.Attempt` per seed, in their order: ``Attempt(seed, text,
      messages)``, ``text`` a task in the tagged format (``render_cat(task)`` writes one;
      ``parse_cat`` reads it) and ``messages`` the conversation that led to it, or
      ``Attempt(seed, declined=reason)`` for a seed it writes no task for;
      ``environment=S`` when the task was written for the fresh state of seed ``S`` rather
      than its own (as ``seeded`` writes in its examples' environment). ``on_step(done)``,
      when given, reports progress: how many of these seeds are finished so far. Raise
      :class:`sc_core.errors.ScError` for a challenge it cannot make at all.

    Only the tagged parts (instruction, verify, solution, failures) are read from ``text``:
    sc assigns each task's ``toolset``, ``seed`` (the attempt's ``environment``, else its
    ``seed``), ``id`` (from its content) and ``provenance`` (``strategy``; ``model``, the
    writer's model id or None; ``exploration``, the messages; ``raw``, the text). Every
    attempt goes through the CaT filter: one declined or unparseable is rejected at ``parses``
    with its reason (``declined: ...``, ``unparseable task: ...``). sc saves each chunk of
    attempts before asking for the next, so a killed challenge resumes without making them
    again.
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
