"""Signing organic requests: the protocol by name, and an ``httpx.Auth`` for any client."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import httpx

from organic_scoring._compat import HAS_HTTP_AUTH, hotkey_signer
from organic_scoring.http._btauth import BtAuth
from organic_scoring.http._epistula import Epistula
from organic_scoring.http._protocol import SigningProtocol

__all__ = ["OrganicAuth", "default_protocol", "protocol_named"]


def default_protocol() -> str:
    """``"btauth/1"`` where ``bt.http_auth`` exists (bittensor 11), else ``"epistula"``."""
    return "btauth/1" if HAS_HTTP_AUTH else "epistula"


def protocol_named(name: str | None) -> SigningProtocol:
    """The protocol called ``name`` (None: the default); ValueError for an unknown name,
    RuntimeError for ``"btauth/1"`` on bittensor 9 or 10."""
    chosen = default_protocol() if name is None else name
    if chosen == "btauth/1":
        return BtAuth()
    if chosen == "epistula":
        return Epistula()
    raise ValueError(f"protocol must be 'btauth/1' or 'epistula', got {name!r}")


class OrganicAuth(httpx.Auth):
    """Signs each request for ``receiver`` with ``wallet``'s hotkey.

    Args:
        wallet: A ``bt.Wallet``, a keypair, or (bittensor 11) a ``bt.Signer``.
        receiver: The validator's hotkey the requests are signed for.
        protocol: ``"btauth/1"`` or ``"epistula"``; default as :func:`default_protocol`.

    Each request is signed afresh (a new nonce), over ``request.content``: send the
    body as bytes (``content=``) or JSON (``json=``), not as a stream.
    """

    requires_request_body = True

    def __init__(self, wallet: Any, receiver: str, protocol: str | None = None) -> None:
        self.protocol = protocol_named(protocol)
        self.signer = hotkey_signer(wallet)
        self.receiver = receiver

    @property
    def hotkey(self) -> str:
        """The ss58 hotkey that signs."""
        return self.signer.ss58_address

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        # The raw path is what the server sees as the request target, query included.
        target = request.url.raw_path.decode("ascii")
        headers = self.protocol.sign(
            self.signer, target=target, body=request.content, receiver=self.receiver
        )
        request.headers.update(headers)
        yield request
