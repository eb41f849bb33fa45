"""Wrong answers derived from a solution's answer, for the CaT filter's ``verifier_strict`` stage.

A verifier can pass every other stage and still accept nearly anything (any positive number,
any string) because the task's own failure cases happened to be wrong in another way. So sc
writes wrong answers of its own from the solution's answer, and the verifier must reject them:

- ``nudged``: every number in the answer (nested in lists and objects too, and written in its
  strings) moved past the tolerance the instruction allows: ``+s``, ``-s``, ``×(1 + r)`` and
  rounded to a coarser grid, with ``s`` at least 1 and ``r`` at least 1%; yes/no flipped;
- ``empty``: an empty string, and an empty list or object for a list or object answer;
- ``none``: no answer (``None``);
- ``type``: a number, string or yes/no answer wrapped in a list;
- ``state``: the solution's own answer with the state of a fresh reset, where the solution
  changed the state (built by the stage: it needs the toolset).

The same number written as a string (``"1624"`` for ``1624``) is not derived: under the ``tag``
and ``plain`` answer protocols an agent's answer is text, and verifiers rightly accept both.
A task whose instruction allows one of these kinds names it in its ``lenient`` field.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

KINDS = ("nudged", "empty", "none", "type", "state")
"""The kinds of derived wrong answers, as a task's ``lenient`` field names them."""

FLOOR_ABSOLUTE = 0.01
"""Tolerance every verifier may have: a cent, or the two decimals answers are usually given to."""
FLOOR_RELATIVE = 1e-6
"""Relative tolerance every verifier may have: float noise of a long computation."""
MARGIN = 3
"""How far past the allowed tolerance a nudge lands, in tolerances: verifiers written for
"one decimal" accept 0.05, 0.1 or a little more."""
APPROXIMATE = 0.1
"""Relative tolerance of an instruction that asks for an approximate answer."""

_COUNT = r"(\d+|one|two|three|four|five|six)"
_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_DECIMALS = re.compile(rf"\b{_COUNT}[\s-]*(?:decimal|d\.?\s?p\b)", re.I)
_SIGNIFICANT = re.compile(rf"\b{_COUNT}[\s-]*(?:significant|sig\.?\s?figs?\b|s\.?f\b)", re.I)
_NEAREST = re.compile(r"\bnearest\s+(\d+(?:\.\d+)?|[a-z]+)", re.I)
_NEAREST_UNITS = {
    "tenth": 0.1, "hundredth": 0.01, "thousandth": 0.001, "cent": 0.01, "penny": 0.01,
    "ten": 10.0, "hundred": 100.0, "thousand": 1000.0, "million": 1e6,
}  # fmt: skip
_WITHIN = re.compile(
    r"(?:\bwithin|±|\+/-|\bplus or minus|\btolerance(?:\s+of)?|\berror(?:\s+of)?(?:\s+at\s+most)?"
    r"|\bmargin(?:\s+of)?)\s*[$€£]?(\d+(?:\.\d+)?)(?![\d.])\s*(%|percent\b)?"
    r"(?!\s*(?:decimal|significant|d\.?p\b|s\.?f\b))",
    re.I,
)
_ROUNDED = re.compile(
    r"\brounded\b|\bround\s+(?:it|this|that|the|your|off|up|down|to)\b|\binteger\b"
    r"|\bwhole\s+(?:number|degree|unit|dollar|euro|pound|percent|minute|second|hour|day)s?\b",
    re.I,
)
_APPROXIMATELY = re.compile(
    r"\b(?:approx(?:imately|imate)?\b|roughly|estimat\w*|ballpark"
    r"|(?:about|around|nearly|almost)(?=\s+[$€£]?\d))",
    re.I,
)
_ASKS = re.compile(
    r"\b(?:tell|give|show)\s+(?:me|us)\b|\blet\s+(?:me|us)\s+know\b|\bhow\s+(?:many|much)\b"
    r"|\breport\s+(?:the|its|their|his|her|how|what|which|back)\b"
    r"|\bwhat(?:'s|\s+(?:is|was|are|were|will|would|does|did|do)\b)",
    re.I,
)
_NUMBER_IN_TEXT = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True)
class Tolerance:
    """How far from the right number an answer may be, as the instruction allows."""

    absolute: float = FLOOR_ABSOLUTE
    relative: float = FLOOR_RELATIVE

    def step(self, x: float) -> float:
        """How far a nudge moves ``x``: :data:`MARGIN` times the tolerance around it."""
        return MARGIN * max(self.absolute, self.relative * abs(x))


def _count(word: str) -> int:
    return _WORDS.get(word.lower()) or int(word)


def _nearest(unit: str) -> float:
    """The grid "to the nearest UNIT" asks for: a number, a named one, else whole units."""
    try:
        return float(unit)
    except ValueError:
        return _NEAREST_UNITS.get(unit.lower().rstrip("s"), 1.0)


def tolerance(instruction: str) -> Tolerance:
    """The tolerance ``instruction`` asks for (decimals, significant figures, "to the nearest",
    "within", "approximately", "rounded"), never below the floors every verifier may have."""
    absolute = [10.0 ** -_count(m[1]) for m in _DECIMALS.finditer(instruction)]
    absolute += [_nearest(m[1]) for m in _NEAREST.finditer(instruction)]
    relative = [10.0 ** (1 - _count(m[1])) for m in _SIGNIFICANT.finditer(instruction)]
    if not absolute and not relative and _ROUNDED.search(instruction):
        absolute.append(1.0)  # rounded, without saying to what: to a whole number
    for match in _WITHIN.finditer(instruction):
        if match[2]:
            relative.append(float(match[1]) / 100)
        else:
            absolute.append(float(match[1]))
    if _APPROXIMATELY.search(instruction):
        relative.append(APPROXIMATE)
    return Tolerance(max([FLOOR_ABSOLUTE, *absolute]), max([FLOOR_RELATIVE, *relative]))


def asks_for_answer(instruction: str) -> bool:
    """Whether the instruction asks for an answer ("tell me", "what is", "how many", "report
    the"), so that a verifier that ignores the answer is too lenient even where it checks the
    action."""
    return bool(_ASKS.search(instruction))


@dataclass(frozen=True)
class Derived:
    """A wrong answer derived from the solution's."""

    kind: str
    """One of :data:`KINDS`."""
    value: Any
    how: str
    """How it was made from the solution's answer, for the rejection's reason."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _moved(x: float, way: str, tolerance: Tolerance) -> tuple[float, str] | None:
    """``x`` nudged ``way`` (``+``, ``-``, ``×``, ``rounded``) past the tolerance, and how;
    None where that way cannot move it far enough."""
    step = tolerance.step(x)
    whole = isinstance(x, int)
    if way in "+-":
        size = math.ceil(max(1.0, step)) if whole else max(1.0, step)
        return (x + size, f"+{size:g}") if way == "+" else (x - size, f"-{size:g}")
    if way == "×":
        if not x:
            return None
        factor = 1 + max(0.01, step / abs(x))
        moved = round(x * factor) if whole else x * factor
        if whole and abs(moved - x) < step:  # a small whole number: ×1.01 rounds back
            return None
        return moved, f"×{factor:.3g}"
    for digits in range(0, -16, -1):  # rounded to 1, 10, 100...: the first grid far enough
        rounded = round(x, digits)
        if abs(rounded - x) > step:
            return rounded, "rounded"
    return None


def _tidy(x: float) -> float:
    """``x`` without the float noise of the arithmetic that moved it: 3.333 for the
    3.3329999999999997 that 3.3 * 1.01 gives, so that a rejection's reason reads well."""
    return float(f"{x:.12g}") if isinstance(x, float) else x


def _moved_text(text: str, way: str, tolerance: Tolerance, hows: list[str | None]) -> str:
    """``text`` with every number in it moved ``+`` or ``-``, written to its own decimals (the
    other ways leave them, as None in ``hows``)."""

    def move(match: re.Match) -> str:
        token = match[0]
        if way not in "+-":
            hows.append(None)
            return token
        decimals = len(token.partition(".")[2])
        unit = 10.0**-decimals
        size = math.ceil(max(1.0, tolerance.step(float(token))) / unit) * unit
        hows.append(f"{way}{size:g}")
        return f"{float(token) + (size if way == '+' else -size):.{decimals}f}"

    return _NUMBER_IN_TEXT.sub(move, text)


def _nudge(value: Any, way: str, tolerance: Tolerance, hows: list[str | None]) -> Any:
    """``value`` with every number in it moved ``way`` and every yes/no flipped; ``hows``
    collects how each changed, None for a number this way cannot move."""
    if isinstance(value, bool):
        hows.append("flipped")
        return not value
    if _is_number(value):
        moved = _moved(value, way, tolerance)
        hows.append(moved and moved[1])
        return _tidy(moved[0]) if moved else value
    if isinstance(value, str):
        return _moved_text(value, way, tolerance, hows)
    if isinstance(value, list):
        return [_nudge(item, way, tolerance, hows) for item in value]
    if isinstance(value, dict):
        return {key: _nudge(item, way, tolerance, hows) for key, item in value.items()}
    return value


def _nudged(answer: Any, tolerance: Tolerance) -> list[Derived]:
    """The answer nudged each way that moves all its numbers at once: a verifier may rightly
    check one of them only (the total of a returned order, not its item count)."""
    derived = []
    for way in ("+", "-", "×", "rounded"):
        hows: list[str | None] = []
        value = _nudge(answer, way, tolerance, hows)
        if hows and None not in hows:
            how = hows[0] if len(hows) == 1 else f"{hows[0]} on each of {len(hows)} values"
            derived.append(Derived("nudged", value, how))
    return derived


def derive(answer: Any, instruction: str) -> list[Derived]:
    """The wrong answers derived from ``answer``, nudged ones first; none of them is equal to
    ``answer`` or to another."""
    candidates = _nudged(answer, tolerance(instruction))
    candidates.append(Derived("empty", "", "empty"))
    if isinstance(answer, (list, dict)):
        candidates.append(Derived("empty", type(answer)(), "empty"))
    candidates.append(Derived("none", None, "no answer"))
    if isinstance(answer, (str, int, float)):  # bools too
        candidates.append(Derived("type", [answer], "in a list"))
    derived, seen = [], {_canonical(answer)}
    for candidate in candidates:
        key = _canonical(candidate.value)
        if key not in seen and candidate.value != answer:
            seen.add(key)
            derived.append(candidate)
    return derived


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
