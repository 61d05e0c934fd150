"""``btauth/1``: bittensor 11's signed HTTP (``bt.http_auth``), as the intake uses it.

bittensor checks the signature; replays are the gate's to judge, so bittensor gets a
nonce store that accepts every nonce (it asks only once the signature verified).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from organic_scoring._compat import Signer, require_http_auth
from organic_scoring.http._protocol import Claim, SigningProtocol
from organic_scoring.intake._gate import Gate, Refused

__all__ = ["BtAuth"]

_PREFIX = "x-bittensor-"
_VERSION = "x-bittensor-version"
_HOTKEY = "x-bittensor-hotkey"
_RECEIVER = "x-bittensor-receiver"
_NONCE = "x-bittensor-nonce"
_SIGNATURE = "x-bittensor-signature"


class BtAuth(SigningProtocol):
    """``btauth/1`` over ``bt.http_auth`` (bittensor 11 only)."""

    name = "btauth/1"

    def __init__(self) -> None:
        require_http_auth("the btauth/1 protocol")
        import bittensor as bt

        self._auth: Any = bt.http_auth

    def is_auth_header(self, name: str) -> bool:
        return name.startswith(_PREFIX)

    def claim(self, headers: Mapping[str, str], receiver: str) -> Claim:
        if headers.get(_VERSION) != self._auth.VERSION:
            raise Refused(401, "missing or unsupported X-Bittensor-Version (expected 1)")
        hotkey = headers.get(_HOTKEY)
        if not hotkey:
            raise Refused(401, "missing X-Bittensor-Hotkey")
        if _SIGNATURE not in headers:
            raise Refused(401, "missing X-Bittensor-Signature")
        try:
            nonce = int(headers[_NONCE])
        except (KeyError, ValueError):
            raise Refused(401, "missing or malformed X-Bittensor-Nonce") from None
        if headers.get(_RECEIVER) != receiver:
            raise Refused(401, "the request is not signed for this validator's hotkey")
        return Claim(hotkey=hotkey, signed_at_ns=nonce, nonce=nonce)

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
        freshness = gate.freshness
        try:
            return self._auth.verify(
                headers,
                body,
                method="POST",
                path=target,
                self_hotkey_ss58=receiver,
                max_age=freshness.max_age,
                allowed_skew=freshness.allowed_skew,
                nonce_store=_GateStore(gate),
            )
        except self._auth.AuthError as exc:
            raise Refused(401, str(exc)) from exc
        except (ValueError, TypeError) as exc:  # input bittensor did not expect
            raise Refused(401, "malformed authentication headers") from exc

    def sign(self, signer: Signer, *, target: str, body: bytes, receiver: str) -> dict[str, str]:
        headers: dict[str, str] = self._auth.sign(
            signer, method="POST", path=target, body=body, receiver_ss58=receiver
        )
        return headers


class _GateStore:
    """bittensor's nonce-store protocol, deferring to the gate: accepts every nonce."""

    __slots__ = ("retention",)

    def __init__(self, gate: Gate) -> None:
        # bittensor checks the retention at every call; the gate checked its store once.
        self.retention = gate.freshness.window

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        return True
