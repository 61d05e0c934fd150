"""The btauth/1 side of the intake: bittensor's ``http_auth``, signers, the request target.

bittensor 11 signs and verifies; this module only reaches it through
:func:`organic_scoring._compat.require_http_auth`, so bittensor 9 and 10 get a clear
error instead of an ``AttributeError``.
"""

from __future__ import annotations

from typing import Any

from starlette.types import Scope

from organic_scoring._compat import require_http_auth

__all__ = ["GuardedNonceStore", "NonceStoreFailure", "http_auth", "request_target", "signer_for"]


def http_auth(feature: str) -> Any:
    """bittensor's ``http_auth`` module; a clear RuntimeError where it does not exist."""
    require_http_auth(feature)
    import bittensor as bt

    return bt.http_auth


def signer_for(wallet: Any) -> Any:
    """Resolve ``wallet`` (a ``bt.Wallet``, keypair or signer) to its hotkey signer once,
    so each request does not load the key again."""
    import bittensor as bt

    resolve = getattr(bt, "resolve_signer", None)
    return wallet if resolve is None else resolve(wallet, role="hotkey")


def request_target(scope: Scope) -> str:
    """The request target the client signed: the full path as sent, plus ``?query``.

    ``raw_path`` keeps the bytes the client sent (percent-escapes included), which is
    what a client signs. Current servers and Starlette's ``Mount`` keep the mount
    prefix (``root_path``) in ``path`` and ``raw_path``; a server that strips it (a
    proxy setting ``root_path``) gets it put back, since the client signed the
    address it called.
    """
    raw = scope.get("raw_path")
    path: str = bytes(raw).split(b"?", 1)[0].decode("latin-1") if raw else scope.get("path", "")
    root = scope.get("root_path", "")
    if root and not (path == root or path.startswith(root.rstrip("/") + "/")):
        path = root.rstrip("/") + path
    query = scope.get("query_string", b"")
    if query:
        path = f"{path}?{bytes(query).decode('latin-1')}"
    return path


class NonceStoreFailure(Exception):
    """The nonce store itself failed (not an authentication failure)."""


class GuardedNonceStore:
    """Wraps a ``NonceStore`` so that its own failures are told apart from bad requests.

    ``bt.http_auth.verify`` checks a store's ``retention`` against the freshness window
    on every call; the intake checks it once when the app is built, so this wrapper
    does not repeat the attribute.
    """

    __slots__ = ("store",)

    def __init__(self, store: Any) -> None:
        self.store = store

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        """Record the pair; False if it was seen before."""
        try:
            return bool(self.store.check_and_store(hotkey_ss58, nonce_ns))
        except Exception as exc:
            raise NonceStoreFailure(repr(exc)) from exc
