"""Which intake the demo's organic traffic comes through (``"axon"`` on 9/10, ``"http"``
over btauth/1 or Epistula), and opening it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from organic_scoring._compat import BT_MAJOR, HAS_AXON, HAS_HTTP_AUTH
from organic_scoring.demo._scorer import DemoScorer, Opener

__all__ = ["INTAKES", "PROTOCOLS", "IntakeChoice", "choose_intake", "open_intake"]

INTAKES = ("axon", "http")
PROTOCOLS = ("btauth/1", "epistula")


@dataclass(frozen=True)
class IntakeChoice:
    intake: str
    protocol: str | None = None


def choose_intake(intake: str | None = None, protocol: str | None = None) -> IntakeChoice:
    """Fill in the defaults for the installed bittensor and check what was asked for.

    Raises:
        ValueError: An unknown intake or protocol, or one this bittensor cannot run;
            the message says what to pick instead.
    """
    if intake is None:
        intake = "axon" if HAS_AXON and protocol is None else "http"
    if intake not in INTAKES:
        raise ValueError(f"intake must be one of {', '.join(INTAKES)}, got {intake!r}")
    if intake == "axon":
        if not HAS_AXON:
            raise ValueError(
                f"the axon intake needs bittensor 9 or 10 (this is {BT_MAJOR}); "
                "bittensor 11 takes organic traffic over signed HTTP: --intake http"
            )
        if protocol is not None:
            raise ValueError("a signing protocol applies to the http intake only")
        return IntakeChoice("axon")
    if protocol is None:
        protocol = "btauth/1" if HAS_HTTP_AUTH else "epistula"
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    if protocol == "btauth/1" and not HAS_HTTP_AUTH:
        raise ValueError(
            f"btauth/1 needs bittensor 11's bt.http_auth (this is bittensor {BT_MAJOR}); "
            "use --protocol epistula"
        )
    return IntakeChoice("http", protocol)


def open_intake(
    choice: IntakeChoice, directory: str, build: Callable[..., DemoScorer]
) -> contextlib.AbstractContextManager[tuple[DemoScorer, Opener, str]]:
    """Serve the chosen intake on 127.0.0.1: yield the scorer, a user opener, a title."""
    if choice.intake == "axon":
        from organic_scoring.demo._axon_side import axon_intake

        return axon_intake(directory, build)
    from organic_scoring.demo._http_side import http_intake

    return http_intake(directory, build, choice.protocol)
