"""The request target a client signed, as the server sees it."""

from __future__ import annotations

from starlette.types import Scope

__all__ = ["request_target"]


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
