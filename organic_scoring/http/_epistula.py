"""Epistula v2: the signed-HTTP protocol of bittensor gateways, on every bittensor major
(``docs/intake.md`` has its headers); freshness and replays are the gate's to judge."""

from __future__ import annotations

import hashlib
import time
import uuid as uuids
from collections.abc import Mapping
from dataclasses import dataclass

from organic_scoring._compat import Signer, sr25519_verify
from organic_scoring.http._protocol import Claim, SigningProtocol
from organic_scoring.intake._gate import Gate, Refused

__all__ = ["Epistula", "EpistulaCaller", "message"]

VERSION = "2"
_VERSION = "epistula-version"
_TIMESTAMP = "epistula-timestamp"
_UUID = "epistula-uuid"
_SIGNED_BY = "epistula-signed-by"
_SIGNED_FOR = "epistula-signed-for"
_SIGNATURE = "epistula-request-signature"
_AUTH_HEADERS = frozenset({_VERSION, _TIMESTAMP, _UUID, _SIGNED_BY, _SIGNED_FOR, _SIGNATURE})


@dataclass(frozen=True)
class EpistulaCaller:
    """The authenticated sender of an Epistula request (``current_request().caller``)."""

    hotkey_ss58: str
    uuid: str
    timestamp_ms: int


def message(body: bytes, uuid: str, timestamp_ms: int | str, signed_for: str) -> bytes:
    """The exact bytes an Epistula v2 request signature signs."""
    return f"{hashlib.sha256(body).hexdigest()}.{uuid}.{timestamp_ms}.{signed_for}".encode()


class Epistula(SigningProtocol):
    """Epistula v2 (every bittensor major)."""

    name = "epistula"

    def is_auth_header(self, name: str) -> bool:
        return name in _AUTH_HEADERS

    def claim(self, headers: Mapping[str, str], receiver: str) -> Claim:
        if headers.get(_VERSION) != VERSION:
            raise Refused(401, "missing or unsupported Epistula-Version (expected 2)")
        signed_by = headers.get(_SIGNED_BY)
        if not signed_by:
            raise Refused(401, "missing Epistula-Signed-By")
        if not headers.get(_SIGNATURE, "").startswith("0x"):
            raise Refused(401, "missing or malformed Epistula-Request-Signature")
        timestamp = headers.get(_TIMESTAMP, "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
            raise Refused(401, "missing or malformed Epistula-Timestamp (milliseconds)")
        try:
            request_id = str(uuids.UUID(headers.get(_UUID, "")))  # one spelling per UUID
        except ValueError:
            raise Refused(401, "missing or malformed Epistula-Uuid") from None
        signed_for = headers.get(_SIGNED_FOR)
        if signed_for is None:
            raise Refused(401, "missing Epistula-Signed-For: requests must name their receiver")
        if signed_for != receiver:
            raise Refused(401, "the request is not signed for this validator's hotkey")
        # The signing millisecond's last nanosecond, or a request signed in the very
        # millisecond the intake started would count as signed before it.
        return Claim(
            hotkey=signed_by,
            signed_at_ns=int(timestamp) * 1_000_000 + 999_999,
            resolution_ns=1_000_000,
            nonce=request_id,
        )

    def verify(
        self,
        claim: Claim,
        headers: Mapping[str, str],
        body: bytes,
        *,
        target: str,
        receiver: str,
        gate: Gate,
    ) -> EpistulaCaller:
        try:
            signature = bytes.fromhex(headers[_SIGNATURE][2:])
            signed = message(body, headers[_UUID], headers[_TIMESTAMP], receiver)
            valid = sr25519_verify(signed, signature, claim.hotkey)
        except ValueError:
            raise Refused(401, "invalid Epistula-Signed-By or signature encoding") from None
        if not valid:
            raise Refused(401, "the signature does not verify against Epistula-Signed-By")
        return EpistulaCaller(
            hotkey_ss58=claim.hotkey,
            uuid=str(claim.nonce),
            timestamp_ms=claim.signed_at_ns // 1_000_000,
        )

    def sign(self, signer: Signer, *, target: str, body: bytes, receiver: str) -> dict[str, str]:
        timestamp = time.time_ns() // 1_000_000
        request_id = str(uuids.uuid4())
        signature = signer.sign(message(body, request_id, timestamp, receiver))
        return {
            "Epistula-Version": VERSION,
            "Epistula-Timestamp": str(timestamp),
            "Epistula-Uuid": request_id,
            "Epistula-Signed-By": signer.ss58_address,
            "Epistula-Signed-For": receiver,
            "Epistula-Request-Signature": "0x" + bytes(signature).hex(),
        }
