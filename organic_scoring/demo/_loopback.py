"""Wallets and ports for a subnet that lives entirely on 127.0.0.1.

The demo makes throw-away wallets with no password in a temp directory, and binds
servers to loopback ports only; nothing here touches a chain.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from organic_scoring.wallet import throwaway_wallet

__all__ = ["free_port", "make_wallet"]


def make_wallet(directory: Path | str, name: str) -> Any:
    """A new wallet (coldkey and hotkey, no password) under ``directory``."""
    return throwaway_wallet(directory, name)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
