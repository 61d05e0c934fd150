"""Organic samples as JSON text and back, for the queues (and datasets) that store them.

A pydantic model is stored as its JSON with its class path, ``module:qualname``; a JSON
value as JSON text; nothing is pickled. Decoding imports the module a stored model
names: decode only records you trust as much as your code.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
from typing import Any, Literal

from pydantic import BaseModel

from organic_scoring.errors import SampleDecodeError, SampleNotStorable

__all__ = ["MAX_DEPTH", "Kind", "SampleDecodeError", "SampleNotStorable", "decode", "encode"]

Kind = Literal["json", "model"]

MAX_DEPTH = 200
"""The deepest nesting of lists and dicts a stored JSON value may have (pydantic's limit)."""

_JSON_SCALARS = (str, int, float, bool, type(None))
_JSON_HINT = (
    "stored samples are pydantic models and JSON values "
    "(dict with str keys, list, str, int, float, bool, None)"
)


def encode(sample: Any) -> tuple[Kind, str | None, str]:
    """``(kind, model path or None, JSON text)`` for ``sample``.

    Raises:
        SampleNotStorable: ``sample`` is not a model or JSON value, holds a float JSON
            cannot carry (NaN, infinity), contains itself, is nested deeper than
            :data:`MAX_DEPTH`, or is a model that cannot be imported by name or loaded
            back from its own JSON. The message names the offending part.
    """
    if isinstance(sample, BaseModel):
        cls = type(sample)
        path = _model_path(cls)
        try:
            body = sample.model_dump_json()
            cls.model_validate_json(body)
        except (ValueError, RecursionError) as exc:
            raise SampleNotStorable(
                f"cannot store a {cls.__qualname__}: it does not load back from its own "
                f"JSON ({exc})"
            ) from exc
        return "model", path, body
    _check_json(sample)
    return "json", None, json.dumps(sample, allow_nan=False, ensure_ascii=False)


def decode(kind: str, model: str | None, body: str) -> Any:
    """The object stored as ``(kind, model, body)``.

    Raises:
        SampleDecodeError: For any failure, with what was stored.
    """
    try:
        if kind == "json":
            return json.loads(body)
        if kind == "model" and model is not None:
            return _import_model(model).model_validate_json(body)
        problem = f"unknown kind {kind!r}"
    except Exception as exc:  # an import, a validation, a RecursionError: all the same here
        what = model if kind == "model" else "JSON"
        raise SampleDecodeError(
            f"cannot load a stored {what} sample: {exc!r}", kind, model, body
        ) from exc
    raise SampleDecodeError(f"cannot load a stored sample: {problem}", kind, model, body)


def _check_json(sample: Any) -> None:
    """Raise unless ``sample`` is a JSON value that comes back unchanged (iteratively)."""
    # (value, path to it, depth); depth -1 marks leaving the container whose id is value.
    stack: list[tuple[Any, list[str | int], int]] = [(sample, [], 0)]
    open_containers: set[int] = set()
    while stack:
        value, where, depth = stack.pop()
        if depth < 0:
            open_containers.discard(value)
            continue
        kind = type(value)
        if kind in _JSON_SCALARS:
            if kind is float and not math.isfinite(value):
                raise SampleNotStorable(
                    f"{_where(where)} is {value!r}; JSON has no NaN or infinity"
                )
            continue
        if kind is not dict and kind is not list:
            advice = "; store a list" if kind is tuple else ""
            raise SampleNotStorable(
                f"{_where(where)} is a {kind.__qualname__}{advice}: {_JSON_HINT}"
            )
        if depth >= MAX_DEPTH:
            raise SampleNotStorable(
                f"{_where(where[:3])}... is nested more than {MAX_DEPTH} levels deep"
            )
        if id(value) in open_containers:
            raise SampleNotStorable(f"{_where(where)} contains itself")
        open_containers.add(id(value))
        stack.append((id(value), where, -1))
        if kind is dict:
            for key, item in value.items():
                if type(key) is not str:
                    raise SampleNotStorable(
                        f"{_where(where)} has a key of type {type(key).__qualname__} "
                        f"({key!r}); JSON object keys are str"
                    )
                stack.append((item, [*where, key], depth + 1))
        else:
            stack.extend((item, [*where, index], depth + 1) for index, item in enumerate(value))


def _where(path: list[str | int]) -> str:
    return "sample" + "".join(f"[{step!r}]" for step in path)


@functools.lru_cache(maxsize=256)
def _model_path(cls: type[BaseModel]) -> str:
    """``module:qualname`` for ``cls``, checked to import back to ``cls`` itself."""
    path = f"{cls.__module__}:{cls.__qualname__}"
    try:
        found: type[BaseModel] | None = _import_model(path)
    except (ImportError, AttributeError, TypeError, ValueError):
        found = None
    if found is not cls:
        raise SampleNotStorable(
            f"cannot store a {cls.__qualname__}: its class cannot be imported back as "
            f"{path!r}; define the model at module level"
        )
    return path


def _import_model(path: str) -> type[BaseModel]:
    """The pydantic model class at ``module:qualname``; refuse anything else."""
    module_name, _, qualname = path.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        found = getattr(found, part)
    if not (isinstance(found, type) and issubclass(found, BaseModel)):
        raise TypeError(f"{path!r} is not a pydantic model class")
    return found
