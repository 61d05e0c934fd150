"""Who is calling: a hotkey is its public key, written one way (SS58, prefix 42).

An SS58 address is ``base58(prefix + public key + checksum)``.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterable
from typing import Any, Final

__all__ = [
    "ANY_HOTKEY",
    "AllowedHotkeys",
    "AnyHotkey",
    "HotkeyPolicy",
    "canonical",
    "hotkey_policy",
    "permitted_validators",
]

PREFIX: Final = 42
_ALPHABET = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_INDEX = {char: value for value, char in enumerate(_ALPHABET)}
_CANONICAL_LENGTH = 48  # base58 of 1 + 32 + 2 bytes, always 48 characters for prefix 42


class AnyHotkey:
    """The type of :data:`ANY_HOTKEY`."""

    _instance: AnyHotkey | None = None

    def __new__(cls) -> AnyHotkey:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ANY_HOTKEY"

    def __reduce__(self) -> str:
        return "ANY_HOTKEY"


ANY_HOTKEY: Final = AnyHotkey()
"""``allowed_hotkeys=ANY_HOTKEY``: an intake open to every hotkey, said on purpose."""

HotkeyPolicy = Callable[[str], bool]
"""Decides, from a canonical hotkey, whether it may call."""

AllowedHotkeys = frozenset[str] | HotkeyPolicy | AnyHotkey
"""A checked ``allowed_hotkeys``: canonical hotkeys, a policy, or :data:`ANY_HOTKEY`."""


def _b58decode(text: str) -> bytes:
    number = 0
    for char in text.encode("ascii"):
        number = number * 58 + _INDEX[char]
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    zeros = len(text) - len(text.lstrip("1"))
    return b"\x00" * zeros + body


def _b58encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    out = bytearray()
    while number:
        number, digit = divmod(number, 58)
        out.append(_ALPHABET[digit])
    zeros = len(data) - len(data.lstrip(b"\x00"))
    return (b"1" * zeros + bytes(reversed(out))).decode("ascii")


def _checksum(payload: bytes) -> bytes:
    return hashlib.blake2b(b"SS58PRE" + payload, digest_size=64).digest()[:2]


def admits(allowed: AllowedHotkeys, hotkey: str) -> bool:
    """Whether ``allowed`` lets the canonical ``hotkey`` call."""
    if isinstance(allowed, AnyHotkey):
        return True
    if isinstance(allowed, frozenset):
        return hotkey in allowed
    return bool(allowed(hotkey))


def public_key(address: str) -> bytes:
    """The 32-byte public key an SS58 address of any prefix names.

    Raises:
        ValueError: ``address`` is not a valid SS58 address of a 32-byte key.
    """
    if not isinstance(address, str) or not address.isascii() or not 40 <= len(address) <= 52:
        raise ValueError("not an SS58 address")
    try:
        raw = _b58decode(address)
    except KeyError:
        raise ValueError("not an SS58 address (a character outside base58)") from None
    if not raw or raw[0] >= 128:
        raise ValueError("not an SS58 address (an unknown prefix)")
    prefix_length = 1 if raw[0] < 64 else 2
    if len(raw) != prefix_length + 32 + 2:
        raise ValueError("not an SS58 address of a 32-byte key")
    if _checksum(raw[:-2]) != raw[-2:]:
        raise ValueError("not an SS58 address (bad checksum)")
    return raw[prefix_length:-2]


def encode(key: bytes) -> str:
    """The canonical (prefix 42) SS58 address of a 32-byte public key."""
    payload = bytes([PREFIX]) + key
    return _b58encode(payload + _checksum(payload))


@functools.lru_cache(maxsize=8192)
def canonical(address: str) -> str:
    """``address`` written the canonical way (prefix 42), whatever prefix it used.

    Raises:
        ValueError: ``address`` is not a valid SS58 address.
    """
    key = public_key(address)
    if len(address) == _CANONICAL_LENGTH and _b58decode(address)[0] == PREFIX:
        return address
    return encode(key)


def hotkey_policy(value: Any, *, name: str = "allowed_hotkeys") -> AllowedHotkeys:
    """Check an ``allowed_hotkeys`` setting once: SS58 addresses (any prefix), a callable
    ``(hotkey) -> bool`` (given the canonical spelling), or :data:`ANY_HOTKEY`.

    Raises:
        ValueError: The setting is missing (None), empty, a single string, or holds
            something that is not an SS58 address. The message names ``name``.
    """
    if isinstance(value, AnyHotkey):
        return value
    if value is None:
        raise ValueError(
            f"{name}: say who may send organic requests: a collection of SS58 hotkeys, "
            "a callable (hotkey) -> bool such as permitted_validators(metagraph), or "
            "organic_scoring.ANY_HOTKEY to let anyone call"
        )
    if callable(value) and not isinstance(value, type):
        return value  # type: ignore[no-any-return]
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ValueError(
            f"{name}: expected a collection of SS58 hotkeys, a callable or ANY_HOTKEY, "
            f"got {value!r}"
        )
    allowed = set()
    for item in value:
        try:
            allowed.add(canonical(item))
        except (ValueError, TypeError):
            raise ValueError(f"{name}: {item!r} is not an SS58 address") from None
    if not allowed:
        raise ValueError(f"{name}: expected at least one hotkey (or ANY_HOTKEY)")
    return frozenset(allowed)


def permitted_validators(metagraph: Any) -> HotkeyPolicy:
    """An ``allowed_hotkeys`` policy: the hotkeys with a validator permit in ``metagraph``.

    Read at every request, so it follows the metagraph as the validator syncs it.
    Works with bittensor 9/10's ``Metagraph`` (``hotkeys`` and ``validator_permit``)
    and 11's (``neurons`` with ``hotkey`` and ``validator_permit``).
    """

    def allowed(hotkey: str) -> bool:
        neurons = getattr(metagraph, "neurons", None)
        if neurons is not None and not hasattr(metagraph, "validator_permit"):
            return any(
                canonical(neuron.hotkey) == hotkey and bool(neuron.validator_permit)
                for neuron in neurons
            )
        hotkeys = list(metagraph.hotkeys)
        permits = list(metagraph.validator_permit)
        return any(
            bool(permit) and canonical(key) == hotkey
            for key, permit in zip(hotkeys, permits, strict=False)
        )

    return allowed
