"""Reading a request body under a size limit, without buffering more than the limit.

A declared ``Content-Length`` above the limit is refused before a byte is read; a
body without one (chunked) is refused as soon as what arrived passes the limit.
"""

from __future__ import annotations

from starlette.types import Receive

__all__ = ["BodyTooLarge", "ClientGone", "InvalidLength", "check_declared_length", "read_body"]


class BodyTooLarge(Exception):
    """The body is (or says it will be) longer than the limit."""


class InvalidLength(Exception):
    """The ``Content-Length`` header is not a non-negative decimal integer."""


class ClientGone(Exception):
    """The client disconnected before the body was complete."""


def check_declared_length(value: str | None, limit: int) -> None:
    """Refuse a declared ``Content-Length`` above ``limit`` (or not a number)."""
    if value is None:
        return
    text = value.strip()
    if not text.isascii() or not text.isdigit():
        raise InvalidLength
    if len(text) > 20 or int(text) > limit:
        raise BodyTooLarge


async def read_body(receive: Receive, limit: int) -> bytes:
    """Receive the whole body, or raise :class:`BodyTooLarge` past ``limit`` bytes."""
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
