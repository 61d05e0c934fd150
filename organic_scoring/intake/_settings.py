"""The intake's limits, in one frozen object every transport and the gate take."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from organic_scoring._defaults import (
    DEFAULT_ALLOWED_SKEW,
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_AGE,
    DEFAULT_MAX_BACKLOG,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_CONCURRENT,
    DEFAULT_MAX_HEADER_BYTES,
    DEFAULT_UNVERIFIED_BYTES,
    DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY,
)

__all__ = ["IntakeSettings"]


class IntakeSettings(BaseModel):
    """How much an intake accepts, and for how long: its limits, validated when built.

    Taken by :func:`~organic_scoring.http.create_app`,
    :func:`~organic_scoring.axon.attach_axon` and
    :class:`~organic_scoring.http.OrganicServer`; frozen, so one object can be shared.
    Who may call (``allowed_hotkeys``, ``quota``) and where nonces are kept
    (``nonce_store``) are separate arguments of the same functions.

    Attributes:
        max_age: Seconds a signed request stays fresh.
        allowed_skew: Seconds a caller's clock may run ahead of ours.
        max_body_bytes: Longer bodies get 413.
        body_timeout: Seconds to receive the whole body; slower ones get 408.
        max_unverified_bytes: Body bytes read at once before their signatures are
            checked, over all callers, and from one address all of it but
            ``max_unverified_bytes_per_hotkey``; more get 503.
        max_unverified_bytes_per_hotkey: The same per claimed hotkey and address
            claiming it; more get 429.
        max_concurrent: Requests handled at once; the rest wait, highest
            ``_priority_fn`` first.
        max_backlog: Requests allowed to wait for a slot; more get 429.
        header_timeout: Seconds a connection of the library's own server has to send
            a request's headers (signed HTTP only).
        max_header_bytes: The most header bytes that server reads for one request.

    Raises:
        pydantic.ValidationError: (a ``ValueError``) A value out of range or of the
            wrong type; the message names the parameter.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    max_age: float = Field(default=DEFAULT_MAX_AGE, gt=0)
    allowed_skew: float = Field(default=DEFAULT_ALLOWED_SKEW, ge=0)
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=0)
    body_timeout: float = Field(default=DEFAULT_BODY_TIMEOUT, gt=0)
    max_unverified_bytes: int = Field(default=DEFAULT_UNVERIFIED_BYTES, ge=1)
    max_unverified_bytes_per_hotkey: int = Field(default=DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY, ge=1)
    max_concurrent: int = Field(default=DEFAULT_MAX_CONCURRENT, ge=1)
    max_backlog: int = Field(default=DEFAULT_MAX_BACKLOG, ge=0)
    header_timeout: float = Field(default=DEFAULT_HEADER_TIMEOUT, gt=0)
    max_header_bytes: int = Field(default=DEFAULT_MAX_HEADER_BYTES, ge=1024)

    @field_validator("max_age", "allowed_skew", "body_timeout", "header_timeout", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        # strict mode refuses an int for a float field; seconds may be whole numbers.
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value

    @model_validator(mode="after")
    def _a_body_fits(self) -> IntakeSettings:
        smallest = min(self.max_unverified_bytes, self.max_unverified_bytes_per_hotkey)
        if smallest < self.max_body_bytes:
            raise ValueError(
                f"max_unverified_bytes and max_unverified_bytes_per_hotkey ({smallest}) "
                f"must hold at least one body of max_body_bytes ({self.max_body_bytes})"
            )
        return self
