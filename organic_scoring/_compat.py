"""The one place that knows what is installed: which bittensor, 9 (``bt.axon``), 10
(``bt.Axon``) or 11 (no axon, synapse or ``bt.logging``; ``bt.http_auth`` and
``bt.set_weights``), and which optional extras. Nothing here touches the network.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import logging
import re
from collections.abc import Callable
from types import ModuleType
from typing import Any, Protocol

import bittensor as bt

__all__ = [
    "BT_MAJOR",
    "BT_VERSION",
    "HAS_AXON",
    "HAS_HTTP_AUTH",
    "axon_class",
    "chain_error_class",
    "hotkey_signer",
    "is_async_subtensor",
    "library_logger",
    "require_axon",
    "require_extra",
    "require_http_auth",
    "sdk_set_weights",
    "sr25519_verify",
    "streaming_synapse_class",
    "synapse_class",
]


_PARTS = (*map(int, re.findall(r"\d+", str(getattr(bt, "__version__", "0")))[:3]), 0, 0, 0)
BT_VERSION: tuple[int, int, int] = (_PARTS[0], _PARTS[1], _PARTS[2])
"""The installed bittensor version as ``(major, minor, patch)``."""

BT_MAJOR: int = BT_VERSION[0]
"""The installed bittensor major version: 9, 10 or 11."""

HAS_AXON: bool = hasattr(bt, "Synapse") and (hasattr(bt, "Axon") or hasattr(bt, "axon"))
"""True on bittensor 9 and 10, whose axon can carry organic traffic."""

HAS_HTTP_AUTH: bool = hasattr(bt, "http_auth")
"""True on bittensor 11, whose ``bt.http_auth`` signs and verifies ``btauth/1`` requests."""


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """``module`` imported, or an ImportError saying that ``feature`` needs ``extra``.

    An ImportError from inside an installed ``module`` is not ours to rename: it propagates.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if (exc.name or "").partition(".")[0] != module.partition(".")[0]:
            raise
        raise ImportError(
            f"{feature} needs the '{extra}' extra ({module.partition('.')[0]}): "
            f"pip install 'organic-scoring[{extra}]'",
            name=exc.name,
        ) from exc


def require_axon(feature: str) -> None:
    """Raise a clear error when ``feature`` needs an axon and this bittensor has none."""
    if not HAS_AXON:
        raise RuntimeError(
            f"{feature} needs a bittensor axon, which bittensor {BT_MAJOR} does not have; "
            "on bittensor 11 take organic traffic through the signed-HTTP intake "
            "(organic_scoring.http.create_app)"
        )


def require_http_auth(feature: str) -> None:
    """Raise a clear error when ``feature`` needs ``bt.http_auth`` and it is missing."""
    if not HAS_HTTP_AUTH:
        raise RuntimeError(
            f"{feature} needs bt.http_auth (the btauth/1 protocol of bittensor 11), which "
            f"bittensor {BT_MAJOR} does not have; on bittensor 9 and 10 sign with Epistula "
            "(protocol='epistula') or take organic traffic through the axon (attach_axon)"
        )


def axon_class() -> Any:
    """``bt.Axon`` (10) or ``bt.axon`` (9)."""
    require_axon("an axon")
    return getattr(bt, "Axon", None) or bt.axon


def dendrite_class() -> Any:
    """``bt.Dendrite`` (10) or ``bt.dendrite`` (9)."""
    require_axon("a dendrite")
    return getattr(bt, "Dendrite", None) or bt.dendrite


def synapse_class() -> type[Any] | None:
    """``bt.Synapse`` on 9 and 10, None on 11."""
    return getattr(bt, "Synapse", None)


def streaming_synapse_class() -> type[Any] | None:
    """``bt.StreamingSynapse`` on 9 and 10, None on 11."""
    return getattr(bt, "StreamingSynapse", None)


def sdk_set_weights() -> Callable[..., Any] | None:
    """bittensor 11's ``bt.set_weights``, looked up at call time; None on 9 and 10."""
    if BT_MAJOR < 11:
        return None
    fn: Callable[..., Any] | None = getattr(bt, "set_weights", None)
    return fn


def chain_error_class() -> type[Exception] | None:
    """bittensor 11's ``bt.ChainError`` (what ``bt.set_weights`` raises); None before 11."""
    if BT_MAJOR < 11:
        return None
    cls: type[Exception] | None = getattr(bt, "ChainError", None)
    return cls


def is_async_subtensor(subtensor: Any) -> bool:
    """Whether a bittensor 9/10 subtensor is async: a ``bt.AsyncSubtensor``, or any
    object whose ``set_weights`` is a coroutine function. False on 11 for anything else."""
    cls = getattr(bt, "AsyncSubtensor", None)
    if isinstance(cls, type) and isinstance(subtensor, cls):
        return True
    return inspect.iscoroutinefunction(getattr(subtensor, "set_weights", None))


def library_logger() -> logging.Logger:
    """Where the library's messages go: ``bt.logging`` (a :class:`logging.Logger`) on 9
    and 10, the ``organic_scoring`` logger on 11."""
    machine = getattr(bt, "logging", None)
    if isinstance(machine, logging.Logger):
        return machine
    return logging.getLogger("organic_scoring")


class Signer(Protocol):
    """A hotkey that signs: its ss58 address and ``sign(bytes) -> bytes`` (sr25519)."""

    @property
    def ss58_address(self) -> str: ...

    def sign(self, message: bytes) -> bytes: ...


def hotkey_signer(wallet: Any) -> Signer:
    """The hotkey signer of ``wallet``: a ``bt.Wallet``, a keypair, or (11) a ``bt.Signer``."""
    resolve = getattr(bt, "resolve_signer", None)
    if resolve is not None:  # 11
        signer: Signer = resolve(wallet, role="hotkey")
        return signer
    hotkey = getattr(wallet, "hotkey", None)
    if hotkey is not None and callable(getattr(hotkey, "sign", None)):
        return hotkey  # type: ignore[no-any-return]
    if callable(getattr(wallet, "sign", None)) and hasattr(wallet, "ss58_address"):
        return wallet  # type: ignore[no-any-return]
    raise TypeError(f"cannot sign with {type(wallet).__name__}: expected a wallet or a keypair")


def sr25519_verify(message: bytes, signature: bytes, ss58_address: str) -> bool:
    """Whether ``signature`` is ``ss58_address``'s sr25519 signature of ``message``.

    Raises:
        ValueError: The address or the signature cannot be decoded.
    """
    return _VERIFY(message, signature, ss58_address)


def _verify_with_sp_core(message: bytes, signature: bytes, ss58_address: str) -> bool:
    from bittensor import sp_core  # 11

    return bool(sp_core.verify(message, signature, ss58_address, sp_core.CRYPTO_SR25519))


@functools.lru_cache(maxsize=4096)
def _public_keypair(ss58_address: str) -> Any:
    return bt.Keypair(ss58_address=ss58_address)


def _verify_with_keypair(message: bytes, signature: bytes, ss58_address: str) -> bool:
    try:
        keypair = _public_keypair(ss58_address)  # 9 and 10
    except Exception as exc:
        raise ValueError(f"not an ss58 address: {exc}") from exc
    if len(signature) != 64:
        raise ValueError("an sr25519 signature is 64 bytes")
    return bool(keypair.verify(message, signature))


_VERIFY: Callable[[bytes, bytes, str], bool] = (
    _verify_with_sp_core if HAS_HTTP_AUTH else _verify_with_keypair
)
