"""Simulated organic users: prompts with their own vocabulary, style and lengths.

Nothing like the bundled dataset: lower-case, often unpunctuated, chatty, drawn
from a few hundred words over several topics, from three words to a few dozen, with
the occasional exact repeat (popular questions are asked again). A distinguisher
that learns the bundled dataset's style cannot lean on it here, and a replay of
this traffic has to keep to its vocabulary to pass.
"""

from __future__ import annotations

import math
import random

__all__ = ["Users", "arrival_rate"]

_TOPICS: dict[str, dict[str, tuple[str, ...]]] = {
    "code": {
        "thing": (
            "script",
            "function",
            "loop",
            "dict",
            "dataframe",
            "regex",
            "api call",
            "docker image",
            "unit test",
            "git branch",
            "json file",
            "sql query",
        ),
        "verb": ("fix", "speed up", "debug", "refactor", "write", "parse", "merge", "deploy"),
        "symptom": (
            "crashes",
            "hangs",
            "returns none",
            "is slow",
            "throws a key error",
            "eats all the memory",
            "works locally but not on the server",
        ),
        "tool": ("python", "pandas", "bash", "postgres", "vscode", "github actions"),
    },
    "food": {
        "thing": (
            "sourdough",
            "risotto",
            "curry",
            "pancakes",
            "lasagna",
            "ramen broth",
            "banana bread",
            "chili",
            "omelette",
            "pie crust",
        ),
        "verb": ("make", "cook", "bake", "freeze", "reheat", "season", "thicken"),
        "symptom": (
            "comes out dry",
            "is too salty",
            "sinks in the middle",
            "tastes bland",
            "burns on the bottom",
            "falls apart",
        ),
        "tool": ("air fryer", "instant pot", "cast iron pan", "oven", "slow cooker"),
    },
    "money": {
        "thing": (
            "budget",
            "credit card debt",
            "emergency fund",
            "rent",
            "index fund",
            "tax return",
            "student loan",
            "side hustle",
        ),
        "verb": ("pay off", "plan", "split", "track", "lower", "invest in"),
        "symptom": ("keeps growing", "never adds up", "feels impossible", "went up again"),
        "tool": ("spreadsheet", "banking app", "envelope method", "robo advisor"),
    },
    "travel": {
        "thing": (
            "trip to lisbon",
            "road trip",
            "layover",
            "hostel",
            "train pass",
            "carry on bag",
            "visa",
            "itinerary",
        ),
        "verb": ("plan", "book", "pack for", "survive", "budget for", "cancel"),
        "symptom": ("got cancelled", "costs too much", "is overbooked", "got lost"),
        "tool": ("google maps", "a rail app", "points", "a travel card"),
    },
    "garden": {
        "thing": (
            "tomato plants",
            "basil",
            "lawn",
            "compost",
            "succulents",
            "roses",
            "raised bed",
            "seedlings",
        ),
        "verb": ("grow", "water", "prune", "repot", "feed", "protect"),
        "symptom": (
            "turn yellow",
            "wilt in the afternoon",
            "get eaten by slugs",
            "stopped growing",
        ),
        "tool": ("mulch", "a drip line", "neem oil", "grow lights"),
    },
}

_OPENERS = ("", "", "", "hey ", "hi ", "ok so ", "quick question ", "help ", "pls ")
_CLOSERS = ("", "", "", "", " thanks", " thx", " any ideas", " asap", " lol", " pls")
_AUDIENCE = ("a beginner", "my mom", "a 10 year old", "someone busy", "two people", "a student")

_TEMPLATES = (
    "how do i {verb} {thing}",
    "how do i {verb} {thing} with {tool}",
    "my {thing} {symptom} what am i doing wrong",
    "why does my {thing} {symptom}",
    "whats the best way to {verb} {thing} for {audience}",
    "can you explain {thing} like im {audience}",
    "is it worth using {tool} to {verb} {thing}",
    "i tried to {verb} {thing} but it {symptom}",
    "{verb} {thing} step by step",
    "should i {verb} {thing} or just use {tool}",
    "give me tips to {verb} {thing} without {tool}",
    "{thing} vs {other} which one is better",
)


def _sentence(rng: random.Random) -> str:
    topic = _TOPICS[rng.choice(tuple(_TOPICS))]
    words = {key: rng.choice(values) for key, values in topic.items()}
    words["other"] = rng.choice(topic["thing"])
    words["audience"] = rng.choice(_AUDIENCE)
    return rng.choice(_TEMPLATES).format(**words)


class Users:
    """Generates organic prompts; seeded, so a run can be repeated."""

    def __init__(self, seed: int, repeat_share: float = 0.05) -> None:
        self._rng = random.Random(seed)
        self._repeat_share = repeat_share
        self._asked: list[str] = []

    def prompt(self) -> str:
        """One user prompt: one to three sentences, sometimes a repeat of an earlier one."""
        rng = self._rng
        if self._asked and rng.random() < self._repeat_share:
            return rng.choice(self._asked[-200:])
        sentences = [_sentence(rng) for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))]
        text = rng.choice(_OPENERS) + " ".join(sentences) + rng.choice(_CLOSERS)
        if rng.random() < 0.3:
            text += "?"
        self._asked.append(text)
        return text


def arrival_rate(base: float, t: float, cycle: float, swing: float) -> float:
    """Organic requests per second at time ``t``: ``base`` on average, rising from a
    trough of ``(1 - swing) * base`` to a peak and back over each ``cycle`` seconds,
    as real load does over a day."""
    return base * (1.0 - swing * math.cos(2.0 * math.pi * t / cycle))
