"""What the intake answers: JSON errors, and the handler's return value as a response
(the shapes a handler may return are in ``docs/intake.md``)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse, Response, StreamingResponse

from organic_scoring._log import log

__all__ = ["UnsupportedResult", "error_response", "response_for", "stream_response"]

_TEXT = "text/plain; charset=utf-8"
_BYTES = "application/octet-stream"


class UnsupportedResult(TypeError):
    """The handler returned something the intake cannot send."""


def error_response(
    status: int, message: str, *, headers: Mapping[str, str] | None = None, detail: Any = None
) -> Response:
    """A JSON error: ``{"error": message}``, plus ``detail`` when given."""
    content: dict[str, Any] = {"error": message}
    if detail is not None:
        content["detail"] = detail
    return JSONResponse(content, status_code=status, headers=headers)


def response_for(result: Any) -> Response | None:
    """The response for a handler's non-streaming result; None for an async iterator;
    UnsupportedResult for any other shape."""
    if isinstance(result, BaseModel):
        return Response(result.model_dump_json(), media_type=JSONResponse.media_type)
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    if isinstance(result, (dict, list)):
        return JSONResponse(result)
    if hasattr(result, "__aiter__"):
        return None
    raise UnsupportedResult(
        f"_on_organic_entry returned {type(result).__name__}; expected a pydantic model, "
        "a dict or list, None, a starlette Response, or an async iterator of str or bytes"
    )


def _encode(chunk: Any) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, str):
        return chunk.encode()
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise UnsupportedResult(f"a streamed chunk must be str or bytes, got {type(chunk).__name__}")


async def _aclose(iterator: Any) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


class _Chunks:
    """The handler's stream as bytes; failures are logged and end the stream."""

    def __init__(self, first: bytes, iterator: AsyncIterator[Any]) -> None:
        self._first: bytes | None = first
        self._iterator = iterator
        self._closed = False

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        if self._first is not None:
            first, self._first = self._first, None
            return first
        if self._closed:
            raise StopAsyncIteration
        try:
            return _encode(await self._iterator.__anext__())
        except StopAsyncIteration:
            await self.aclose()
            raise
        except Exception as exc:
            log.error(f"organic handler stream failed and was cut short: {exc!r}", exc_info=exc)
            await self.aclose()
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        """Close the handler's iterator (once); safe to call at any time."""
        if not self._closed:
            self._closed = True
            await _aclose(self._iterator)


async def stream_response(result: Any) -> tuple[StreamingResponse, _Chunks] | None:
    """Start the handler's stream (its first chunk awaited here, so that a failure before
    it is a 500): the response and its chunks, which the caller must ``aclose()``."""
    iterator: AsyncIterator[Any] = result.__aiter__()
    try:
        first_item = await iterator.__anext__()
        first = _encode(first_item)
    except StopAsyncIteration:
        await _aclose(iterator)
        return None
    except BaseException:
        await _aclose(iterator)
        raise
    chunks = _Chunks(first, iterator)
    media_type = _TEXT if isinstance(first_item, str) else _BYTES
    return StreamingResponse(chunks, media_type=media_type), chunks
