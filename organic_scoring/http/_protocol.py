"""What a signed-HTTP protocol provides the intake and the client.

The intake asks a protocol for three things, in this order, so that a request that
cannot be accepted costs as little as possible:

1. :meth:`SigningProtocol.claim`, from the headers alone: who claims to have signed,
   when, with which nonce, for whom. Missing, malformed or repeated authentication
   headers, and a request signed for another receiver, are refused here (401, or 400
   for a repeated header) before any byte of the body is read.
2. :meth:`SigningProtocol.verify`, once the body is in: the signature over it, and
   (through the gate) the nonce never accepted before.
3. :meth:`SigningProtocol.sign`, on the caller's side: the headers for one request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from organic_scoring._compat import Signer
from organic_scoring.intake._gate import Claim, Gate, Refused

__all__ = ["Claim", "SigningProtocol", "header_map"]


class SigningProtocol(ABC):
    """One way of signing organic requests (``btauth/1``, ``epistula``)."""

    name: str
    """The protocol's name, as ``create_app(protocol=...)`` takes it."""

    @abstractmethod
    def is_auth_header(self, name: str) -> bool:
        """True for a (lower-case) header name the protocol authenticates with; such a
        header sent twice is refused rather than read as "the last one wins"."""

    @abstractmethod
    def claim(self, headers: Mapping[str, str], receiver: str) -> Claim:
        """Read the claim from the (lower-cased) headers.

        Raises:
            Refused: 401 when a header is missing or malformed, or the request is not
                signed for ``receiver``.
        """

    @abstractmethod
    def verify(
        self,
        claim: Claim,
        headers: Mapping[str, str],
        body: bytes,
        *,
        target: str,
        receiver: str,
        gate: Gate,
    ) -> Any:
        """Check the signature over ``body``; the app then remembers ``claim.nonce``.

        Returns the protocol's caller record (``current_request().caller``). Runs on the
        event loop: it must not touch the nonce store (which may block).

        Raises:
            Refused: 401 for a bad signature.
        """

    @abstractmethod
    def sign(self, signer: Signer, *, target: str, body: bytes, receiver: str) -> dict[str, str]:
        """The headers that sign a POST of ``body`` to ``target`` for ``receiver``."""


def header_map(raw: list[tuple[bytes, bytes]], protocol: SigningProtocol) -> dict[str, str]:
    """ASGI headers as a dict of lower-case names.

    Raises:
        Refused: 400 when one of the protocol's authentication headers is repeated.
    """
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        if name in headers and protocol.is_auth_header(name):
            raise Refused(400, f"the {name} header is repeated")
        headers[name] = value.decode("latin-1")
    return headers
