"""The built-in challenger strategies: ``explore`` (the paper's) and ``seeded`` (few-shot)."""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import suppress

from sc_core import hookimpl
from sc_core.agent import Agent, AgentConfig, EpisodeSpec
from sc_core.challenge import (
    EXPLORE_PROMPT,
    Attempt,
    ChallengeConfig,
    Challenger,
    cat_prompt,
    render_cat,
)
from sc_core.errors import ScError
from sc_core.task import CodeAsTask
from sc_core.tools import ToolsetSpec

WRITER_PROMPT = "You write realistic tasks, with Python code that checks them, for a set of tools."


class ExploreChallenger(Challenger):
    """Call the tools on a fresh environment for a few turns, then write a task about them."""

    name = "explore"

    def attempt(
        self, toolset: ToolsetSpec, seeds: list[int], on_step: Callable[[int], None] | None = None
    ) -> list[Attempt]:
        config = AgentConfig(
            max_turns=self.config.explore_turns,
            max_new_tokens=self.config.explore_tokens,
            max_total_tokens=self.config.explore_total_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            system_prompt=EXPLORE_PROMPT,
            answer_protocol="tag",  # EXPLORE_PROMPT asks for <answer>done</answer>
            answer_reminder=False,  # exploring: no result answers a task
        )
        agent = Agent(self.model, config)
        instances = [toolset.create() for _ in seeds]
        try:
            specs = [
                EpisodeSpec("Explore the tools.", instance, seed)
                for instance, seed in zip(instances, seeds, strict=True)
            ]
            episodes = agent.run(specs, on_step)
            guidance = self.config.guidance
            conversations = [
                [
                    *episode.messages,
                    {"role": "user", "content": cat_prompt(instance, seed, guidance, example=True)},
                ]
                for episode, instance, seed in zip(episodes, instances, seeds, strict=True)
            ]
            tools = [[t.spec() for t in instance.tools.values()] for instance in instances]
            texts = self.write(agent, conversations, tools)
        finally:
            for instance in instances:
                with suppress(Exception):
                    instance.close()
        return [
            Attempt(seed, text, episode.messages)
            for seed, text, episode in zip(seeds, texts, episodes, strict=True)
        ]


class SeededChallenger(Challenger):
    """Show a few example tasks (``--examples`` or the toolset's own), then ask for a new one,
    written in the examples' environment (see :func:`pick_shots`)."""

    name = "seeded"

    @classmethod
    def shown(cls, toolset: ToolsetSpec, config: ChallengeConfig) -> list[CodeAsTask]:
        """``config.examples``, else the toolset's own."""
        return list(config.examples) or toolset.examples()

    def attempt(
        self, toolset: ToolsetSpec, seeds: list[int], on_step: Callable[[int], None] | None = None
    ) -> list[Attempt]:
        examples = self.shown(toolset, self.config)
        if not examples:
            raise ScError(
                f"the seeded strategy needs example tasks: toolset {toolset.spec!r} ships "
                "none, so pass --examples FILE"
            )
        instance = toolset.create()
        try:
            tools = [t.spec() for t in instance.tools.values()]
            agent = Agent(self.model, AgentConfig(system_prompt=WRITER_PROMPT))
            conversations, environments = [], []
            for seed in seeds:
                shots = pick_shots(examples, self.config.shots, random.Random(seed))
                environments.append(shots[0].seed)
                shown = "\n\n".join(render_cat(example) for example in shots)
                writing = cat_prompt(instance, shots[0].seed, self.config.guidance)
                request = (
                    f"Example tasks for these tools:\n\n{shown}\n\n{writing}\n\n"
                    "Write a new task, different from the examples."
                )
                conversations.append(
                    [
                        agent.renderer.system_message(WRITER_PROMPT, tools),
                        {"role": "user", "content": request},
                    ]
                )
            texts = self.write(agent, conversations, [tools] * len(seeds))
            if on_step:
                on_step(len(seeds))
        finally:
            instance.close()
        return [
            Attempt(seed, text, environment=environment)
            for seed, text, environment in zip(seeds, texts, environments, strict=True)
        ]


def pick_shots(examples: list[CodeAsTask], shots: int, rng: random.Random) -> list[CodeAsTask]:
    """Up to ``shots`` examples from one environment (examples that share a seed), the
    environment drawn with ``rng``. The new task is written in that environment: small models
    copy the examples' customers, emails and ids, which exist only there (1.5B seeded on shop
    wrote 20 of 31 tasks about the examples' customers into other environments)."""
    by_environment: dict[int, list[CodeAsTask]] = {}
    for example in examples:
        by_environment.setdefault(example.seed, []).append(example)
    group = by_environment[rng.choice(sorted(by_environment))]
    return rng.sample(group, min(shots, len(group)))


@hookimpl
def register_challengers(register):
    register("explore", ExploreChallenger)
    register("seeded", SeededChallenger)
