"""Wallets and ports for tests that live entirely on 127.0.0.1."""

from __future__ import annotations

import socket

from organic_scoring.wallet import throwaway_wallet as make_wallet

__all__ = ["free_port", "make_wallet"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
