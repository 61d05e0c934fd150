"""SS58 spellings of test keys, from the installed bittensor's own encoder (not ours)."""

from __future__ import annotations

import hashlib


def ss58(key: bytes, prefix: int = 42) -> str:
    """``key`` (32 bytes) as an SS58 address with network ``prefix``."""
    try:
        from bittensor import sp_core  # 11
    except ImportError:  # 9 and 10
        from scalecodec.utils.ss58 import ss58_encode

        return str(ss58_encode(key, prefix))
    return str(sp_core.ss58_encode(key, prefix))


def key(name: str) -> bytes:
    """A 32-byte public key named ``name`` (no private key behind it)."""
    return hashlib.sha256(name.encode()).digest()


def hotkey(name: str, prefix: int = 42) -> str:
    """The SS58 address of the key named ``name``."""
    return ss58(key(name), prefix)
