"""The one answer every way of setting weights gives, on every bittensor major."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

__all__ = ["OUTCOMES", "Outcome", "WeightSetterStats", "WeightsResult"]

Outcome = Literal["set", "committed", "rate_limited", "not_permitted", "rejected", "error"]
"""What became of one attempt to set weights."""

OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
"""Every :data:`Outcome`, in the order of the docs' table."""

_SUCCESSES = ("set", "committed")


@dataclass(frozen=True)
class WeightsResult:
    """The outcome of one attempt to set weights, the same shape on every bittensor major.

    Unpacks like bittensor 9's answer (``success, message = result``) and is truthy
    when the weights were set or committed.

    Attributes:
        success: True for ``"set"`` and ``"committed"``.
        message: What happened; the chain's or the SDK's words when they answered.
        raw: What bittensor returned or raised; None when nothing was sent.
        outcome: One of ``"set"``, ``"committed"`` (commit-reveal), ``"rate_limited"``,
            ``"not_permitted"``, ``"rejected"``, ``"error"`` (the docs' table of
            outcomes says what each means). Default: ``"set"`` if ``success``, else
            ``"error"``.
        block: The chain's block read just before sending; None when unknown.
        retry_in_blocks: Blocks until the chain accepts this hotkey's next weights
            (after ``"rate_limited"``, ``"set"`` or ``"committed"``); else None.
    """

    success: bool
    message: str
    raw: Any = None
    outcome: Outcome = "set"
    block: int | None = None
    retry_in_blocks: int | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {list(OUTCOMES)}, got {self.outcome!r}")
        if not self.success and self.outcome == "set":  # the default, on a failure
            object.__setattr__(self, "outcome", "error")
        if self.success != (self.outcome in _SUCCESSES):
            raise ValueError(f"success={self.success} contradicts outcome={self.outcome!r}")

    def __iter__(self) -> Iterator[Any]:
        yield self.success
        yield self.message

    def __bool__(self) -> bool:
        return self.success


@dataclass(frozen=True)
class WeightSetterStats:
    """A snapshot of a :class:`WeightSetter`'s attempts, for logs and metrics.

    Attributes:
        attempts: Attempts so far, by outcome (every outcome present, 0 included).
        last_result: The latest attempt's result; None before the first.
        last_success_block: The block of the latest ``"set"``/``"committed"``.
        last_success_time: When it happened, in seconds since the epoch.
        blocks_since_last_update: Blocks since this hotkey's weights last changed on
            chain, as last read; None until read.
        running: Whether the background run is on.
    """

    attempts: Mapping[Outcome, int]
    last_result: WeightsResult | None
    last_success_block: int | None
    last_success_time: float | None
    blocks_since_last_update: int | None
    running: bool
