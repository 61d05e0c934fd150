"""The intake's settings, validated once when the app is built."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from organic_scoring._defaults import (
    DEFAULT_ALLOWED_SKEW,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_UNVERIFIED_BYTES,
    DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY,
)

__all__ = ["IntakeSettings", "ProtocolName"]


ProtocolName = Literal["btauth/1", "epistula"]


class IntakeSettings(BaseModel):
    """Validated options of :func:`~organic_scoring.http.create_app`.

    Attributes:
        hotkey_ss58: The validator's own hotkey; requests must be signed for it.
        protocol: ``"btauth/1"`` or ``"epistula"``.
        path: Where the intake answers, e.g. ``"/organic"``.
        max_body_bytes: Longer bodies are refused with 413.
        body_timeout: Seconds to receive the whole body; slower bodies get 408.
        max_concurrent: Requests handled at once (handler slots).
        max_backlog: Requests allowed to wait for a slot; more are refused with 429.
        max_age: How old (seconds) a request's nonce may be.
        allowed_skew: How far ahead (seconds) of this clock a nonce may be.
        max_unverified_bytes: Body bytes read at once before their signatures are
            checked, over all callers; past it, 503.
        max_unverified_bytes_per_hotkey: The same per claimed hotkey; past it, 429.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    hotkey_ss58: str = Field(min_length=1)
    protocol: ProtocolName
    path: str = "/organic"
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=0)
    body_timeout: float = Field(default=DEFAULT_BODY_TIMEOUT, gt=0)
    max_concurrent: int = Field(default=32, ge=1)
    max_backlog: int = Field(default=256, ge=0)
    max_age: float = Field(default=DEFAULT_MAX_AGE, gt=0)
    allowed_skew: float = Field(default=DEFAULT_ALLOWED_SKEW, ge=0)
    max_unverified_bytes: int = Field(default=DEFAULT_UNVERIFIED_BYTES, ge=1)
    max_unverified_bytes_per_hotkey: int = Field(default=DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY, ge=1)

    @model_validator(mode="after")
    def _a_body_fits(self) -> IntakeSettings:
        smallest = min(self.max_unverified_bytes, self.max_unverified_bytes_per_hotkey)
        if smallest < self.max_body_bytes:
            raise ValueError(
                f"max_unverified_bytes and max_unverified_bytes_per_hotkey ({smallest}) "
                f"must hold at least one body of max_body_bytes ({self.max_body_bytes})"
            )
        return self

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str) -> str:
        if not value.startswith("/") or "?" in value or "#" in value:
            raise ValueError("expected an absolute path such as '/organic', without a query")
        return value

    @field_validator("max_age", "allowed_skew", "body_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        # strict mode refuses an int for a float field; seconds may be whole numbers.
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
