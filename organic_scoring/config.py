"""The scoring loop's settings, validated once when the scorer is built."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator, model_validator
from pydantic.functional_validators import BeforeValidator

from organic_scoring._defaults import (
    DEFAULT_STUCK_AFTER,
    DEFAULT_TRIGGER_FREQUENCY_MIN,
    JITTER_UTILISATION,
)
from organic_scoring._log import log
from organic_scoring.intake._identity import AllowedHotkeys, hotkey_policy

__all__ = ["ScoringConfig", "Trigger"]

Trigger = Literal["seconds", "steps", "poisson"]


def _real_number(value: Any) -> Any:
    # pydantic would take True as 1 and "3" as 3.0; a loop parameter is a number.
    if value is not None and not _is_number(value):
        raise ValueError(f"expected a number, got {type(value).__name__} {value!r}")
    return value


_Number = Annotated[float, BeforeValidator(_real_number)]
_Limit = Annotated[float | None, BeforeValidator(_real_number)]  # None: no limit


class ScoringConfig(BaseModel):
    """Validated settings of the organic scoring loop; a bad value raises
    :class:`pydantic.ValidationError` (a :class:`ValueError`) at construction.

    Each field is the argument of the same name of
    :class:`~organic_scoring.OrganicScoringBase`, documented there.
    """

    model_config = ConfigDict(
        extra="forbid", frozen=True, allow_inf_nan=False, arbitrary_types_allowed=True
    )

    trigger: Trigger = "seconds"
    trigger_frequency: _Number = Field(default=15.0, gt=0)
    trigger_frequency_min: _Number = Field(default=DEFAULT_TRIGGER_FREQUENCY_MIN, gt=0)
    trigger_scaling_factor: _Number = Field(default=5.0, gt=0)
    max_concurrent_iterations: int = Field(default=1, ge=1, strict=True)
    query_timeout: _Limit = Field(default=None, gt=0)
    reference_timeout: _Limit = Field(default=None, gt=0)
    rewards_timeout: _Limit = Field(default=None, gt=0)
    weights_timeout: _Limit = Field(default=None, gt=0)
    log_timeout: _Limit = Field(default=None, gt=0)
    backoff_initial: _Number = Field(default=0.5, ge=0)
    backoff_max: _Number = Field(default=30.0, ge=0)
    allowed_hotkeys: AllowedHotkeys | None = None
    trigger_jitter: _Number = Field(default=0.0, ge=0, lt=1)
    seed: int | None = Field(default=None, strict=True)
    redact: StrictBool | Callable[[Any], Any] = False
    stuck_after: _Number = Field(default=DEFAULT_STUCK_AFTER, gt=0)
    release_when_stuck: StrictBool = False

    @model_validator(mode="before")
    @classmethod
    def _default_minimum(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("trigger_frequency_min") is None:
            data = dict(data)
            data.pop("trigger_frequency_min", None)
            frequency = data.get("trigger_frequency", 15.0)
            if _is_number(frequency) and frequency > 0:
                data["trigger_frequency_min"] = min(DEFAULT_TRIGGER_FREQUENCY_MIN, frequency)
        return data

    @field_validator("redact", mode="before")
    @classmethod
    def _bool_or_callable(cls, value: Any) -> Any:
        if not isinstance(value, bool) and not callable(value):
            raise ValueError(
                "expected True, False or a function of one sample returning what may be "
                f"kept of it, got {type(value).__name__} {value!r}"
            )
        return value

    @field_validator("allowed_hotkeys", mode="before")
    @classmethod
    def _hotkey_policy(cls, value: Any) -> Any:
        # None here means "the intake decides"; an intake refuses to open without a choice.
        return None if value is None else hotkey_policy(value, name="allowed_hotkeys")

    @model_validator(mode="after")
    def _consistent(self) -> ScoringConfig:
        if self.trigger_frequency_min > self.trigger_frequency:
            unit = " steps" if self.trigger == "steps" else " seconds"
            log.warning(
                f"trigger_frequency ({self.trigger_frequency:g}) is below "
                f"trigger_frequency_min ({self.trigger_frequency_min:g}); the loop runs at "
                f"the floor, every {self.trigger_frequency_min:g}{unit}"
            )
        if self.trigger == "steps":
            for name in ("trigger_frequency", "trigger_frequency_min"):
                if getattr(self, name) < 1:
                    raise ValueError(f"{name} must be at least 1 with trigger='steps'")
            if self.trigger_jitter:
                raise ValueError(
                    f"trigger_jitter ({self.trigger_jitter:g}) applies to trigger='seconds' "
                    "only; leave it at 0 with trigger='steps'"
                )
        if self.trigger == "poisson" and self.trigger_jitter:
            raise ValueError(
                f"trigger_jitter ({self.trigger_jitter:g}) applies to trigger='seconds' "
                "only; trigger='poisson' draws every gap at random already: leave it at 0"
            )
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max ({self.backoff_max:g}) must not be below "
                f"backoff_initial ({self.backoff_initial:g})"
            )
        return self

    def period(self, queue_size: int) -> float:
        """The annealed period (seconds) or threshold (steps) for a queue of this size.

        ``max(trigger_frequency - queue_size / trigger_scaling_factor,
        trigger_frequency_min)``, as an int for the steps trigger; the mean period
        ``trigger_frequency`` under ``"poisson"``, whatever the queue.
        """
        if self.trigger == "poisson":
            return float(self.trigger_frequency)
        value = max(
            self.trigger_frequency - queue_size / self.trigger_scaling_factor,
            self.trigger_frequency_min,
        )
        return float(int(value)) if self.trigger == "steps" else float(value)

    def backoff(self, failures: int) -> float:
        """The pause in seconds after ``failures`` failures in a row (at least 1)."""
        try:  # backoff_initial * 2 ** (failures - 1), exactly
            pause = math.ldexp(self.backoff_initial, failures - 1)
        except OverflowError:  # past any float, so past backoff_max
            pause = math.inf
        return min(pause, self.backoff_max)

    def jittered_mean(self, rate: float, backlog: float) -> float:
        """The mean period, in seconds, around which a jittered period is drawn, from the
        smoothed arrival ``rate`` (per second) and queue size ``backlog`` (the formula is
        in the docs' probes page)."""
        frequency, scaling = self.trigger_frequency, self.trigger_scaling_factor
        equivalent = backlog
        if rate > 0:
            equivalent = max(backlog, scaling * (frequency - JITTER_UTILISATION / rate))
        return max(frequency - equivalent / scaling, self.trigger_frequency_min)


def _is_number(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and not (isinstance(value, float) and math.isnan(value))
    )
