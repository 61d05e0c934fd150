"""Reading a request body under a size limit and a time limit.

A declared ``Content-Length`` above the limit is refused before a byte is read; a
body without one (chunked) is refused as soon as what arrived passes the limit. A
body that has not arrived whole within the time limit is given up (408), and what
had arrived of it is dropped with it: a caller that trickles its body cannot hold
the server's memory.
"""

from __future__ import annotations

import anyio
from starlette.types import Receive

__all__ = [
    "BodyTooLarge",
    "BodyTooSlow",
    "ClientGone",
    "InvalidLength",
    "check_declared_length",
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


def check_declared_length(value: str | None, limit: int) -> None:
    """Refuse a declared ``Content-Length`` above ``limit`` (or not a number)."""
    if value is None:
        return
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise InvalidLength
    if len(text) > 20 or int(text) > limit:
        raise BodyTooLarge


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes:
    """Receive the whole body within ``timeout`` seconds.

    Raises:
        BodyTooLarge: Past ``limit`` bytes.
        BodyTooSlow: Not whole after ``timeout`` seconds.
        ClientGone: The client hung up first.
    """
    # On the running task: no task of its own per request, no extra turns of the loop.
    with anyio.move_on_after(timeout):
        return await _read(receive, limit)
    raise BodyTooSlow


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
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
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)
