"""Wallets and ports for a subnet that lives entirely on 127.0.0.1.

The demo (and the test-suite) make throw-away wallets with no password in a temp
directory, and bind servers to loopback ports only; nothing here touches a chain.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import bittensor as bt

__all__ = ["free_port", "make_wallet"]


def make_wallet(directory: Path | str, name: str) -> Any:
    """A new wallet (coldkey and hotkey, no password) under ``directory``."""
    wallet = bt.Wallet(name=name, hotkey="default", path=str(directory))
    wallet.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return wallet


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
