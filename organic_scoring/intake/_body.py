"""Reading a request body under a size limit, a time limit and a memory budget."""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio

if TYPE_CHECKING:  # starlette comes with the transports that read bodies
    from starlette.types import Receive

__all__ = [
    "BodyBudget",
    "BodyTooLarge",
    "BodyTooSlow",
    "ClientGone",
    "InvalidLength",
    "check_declared_length",
    "network",
    "read_body",
]


class BodyTooLarge(Exception):
    """The body is (or says it will be) longer than the limit."""


class InvalidLength(Exception):
    """The ``Content-Length`` header is not a non-negative decimal integer."""


class ClientGone(Exception):
    """The client disconnected before the body was complete."""


class BodyTooSlow(Exception):
    """The body did not arrive whole within the time limit."""


class OverBudget(Exception):
    """Reading this body would pass the budget; ``per_hotkey`` says which share."""

    def __init__(self, per_hotkey: bool) -> None:
        super().__init__("per hotkey" if per_hotkey else "in all")
        self.per_hotkey = per_hotkey


class BodyBudget:
    """Bytes of bodies read before their signatures are checked, in all and per claimant
    (a claimed hotkey and the address claiming it); one event loop's (no lock).

    One address holds at most all of the budget but one claimant's share, however many
    hotkeys it claims: it cannot leave a caller elsewhere no room at all.
    """

    def __init__(self, total: int, per_hotkey: int) -> None:
        self.total = total
        self.per_hotkey = per_hotkey
        self.per_address = max(per_hotkey, total - per_hotkey)
        self.held = 0
        self._by_claimant: Counter[tuple[str, str]] = Counter()
        self._by_address: Counter[str] = Counter()

    def take(self, hotkey: str, address: str, size: int) -> Callable[[], None]:
        """Hold ``size`` bytes for ``hotkey`` claimed from ``address`` until the returned
        (idempotent) function is called.

        Raises:
            OverBudget: The claimant's share, the address's, or the whole budget, has no
                room.
        """
        claimant = (hotkey, address)
        if self._by_claimant[claimant] + size > self.per_hotkey:
            raise OverBudget(per_hotkey=True)
        if self.held + size > self.total or self._by_address[address] + size > self.per_address:
            raise OverBudget(per_hotkey=False)
        self.held += size
        self._by_claimant[claimant] += size
        self._by_address[address] += size
        held = True

        def release() -> None:
            nonlocal held
            if not held:
                return
            held = False
            self.held -= size
            self._by_claimant[claimant] -= size
            if not self._by_claimant[claimant]:
                del self._by_claimant[claimant]
            self._by_address[address] -= size
            if not self._by_address[address]:
                del self._by_address[address]

        return release


def network(host: str) -> str:
    """The budget's name for a caller's ``host``: an IPv4 address however spelt (an
    IPv4-mapped IPv6 one too), an IPv6 address's /64 (one host's usual allotment), or
    ``host`` unchanged when it is not an address (a unix socket's "")."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))
    return str(address)


def check_declared_length(value: str | None, limit: int) -> int | None:
    """The declared ``Content-Length`` (None when there is none); refused above
    ``limit`` or when it is not a number."""
    if value is None:
        return None
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise InvalidLength
    if len(text) > 20 or int(text) > limit:
        raise BodyTooLarge
    return int(text)


async def read_body(
    receive: Receive, limit: int, timeout: float, declared: int | None = None
) -> bytes:
    """Receive the whole body within ``timeout`` seconds (into one buffer of the
    ``declared`` length when there is one).

    Raises:
        BodyTooLarge: Past ``limit`` bytes, or past the declared length.
        BodyTooSlow: Not whole after ``timeout`` seconds.
        ClientGone: The client hung up first.
    """
    with anyio.move_on_after(timeout):
        if declared is not None:
            return await _read_declared(receive, declared)
        return await _read(receive, limit)
    raise BodyTooSlow


async def _chunks(receive: Receive, limit: int) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, refused past ``limit`` bytes in all."""
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.disconnect":
            raise ClientGone
        if kind != "http.request":
            continue
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            yield chunk
        if not message.get("more_body", False):
            return


async def _read_declared(receive: Receive, declared: int) -> bytes:
    buffer = bytearray(declared)
    size = 0
    async for chunk in _chunks(receive, declared):
        buffer[size : size + len(chunk)] = chunk
        size += len(chunk)
    del buffer[size:]
    return bytes(buffer)


async def _read(receive: Receive, limit: int) -> bytes:
    chunks = [chunk async for chunk in _chunks(receive, limit)]
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)
