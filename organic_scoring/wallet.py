"""Throwaway wallets for trying things on one machine, on every bittensor major.

Nothing here touches a chain or the network. Never hold funds in such a wallet: its keys
are written to disk unencrypted.
"""

from __future__ import annotations

import os
from typing import Any

import bittensor as bt

__all__ = ["throwaway_wallet"]


def throwaway_wallet(
    directory: str | os.PathLike[str], name: str = "organic", hotkey: str = "default"
) -> Any:
    """A new ``bt.Wallet`` named ``name`` under ``directory``, keys unencrypted.

    Existing keys of that name in ``directory`` are overwritten.
    """
    wallet = bt.Wallet(name=name, hotkey=hotkey, path=os.fspath(directory))
    wallet.create_new_coldkey(use_password=False, overwrite=True, suppress=True)
    wallet.create_new_hotkey(use_password=False, overwrite=True, suppress=True)
    return wallet
