"""What a signed-HTTP protocol provides the intake (``claim`` from the headers before the
body is read, then ``verify``) and the client (``sign``)."""

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
        """True for a (lower-case) header name the protocol authenticates with."""

    @abstractmethod
    def claim(self, headers: Mapping[str, str], receiver: str) -> Claim:
        """The claim in the (lower-cased) headers; Refused (401) when a header is missing
        or malformed, or the request is not signed for ``receiver``."""

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
        """The caller record (``current_request().caller``) once the signature over
        ``body`` verifies, else Refused (401). Runs on the event loop: no nonce store."""

    @abstractmethod
    def sign(self, signer: Signer, *, target: str, body: bytes, receiver: str) -> dict[str, str]:
        """The headers that sign a POST of ``body`` to ``target`` for ``receiver``."""


def header_map(raw: list[tuple[bytes, bytes]], protocol: SigningProtocol) -> dict[str, str]:
    """ASGI headers as a dict of lower-case names; Refused (400) for a repeated
    authentication header (not read as "the last one wins")."""
    headers: dict[str, str] = {}
    for key, value in raw:
        name = key.decode("latin-1").lower()
        if name in headers and protocol.is_auth_header(name):
            raise Refused(400, f"the {name} header is repeated")
        headers[name] = value.decode("latin-1")
    return headers
