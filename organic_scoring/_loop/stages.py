"""The names of an iteration's stages: one ``Literal``, used everywhere a stage is named."""

from __future__ import annotations

from typing import Literal

__all__ = ["STAGES", "Stage"]

Stage = Literal["sample", "query", "reference", "rewards", "weights", "log", "iteration"]
"""Where an iteration failed: one of its stages, or ``"iteration"`` for an exception
from an overridden ``loop_iteration`` that no stage accounts for."""

STAGES: tuple[Stage, ...] = ("sample", "query", "reference", "rewards", "weights", "log")
"""The stages of one iteration, in order."""
