"""Samples to JSON text and back, for the queues that keep samples outside the process.

A pydantic model is stored as its JSON (``model_dump_json``) with its class's import
path, ``module:qualname``; loading imports that class and validates the JSON back
into it. A JSON value (dict with str keys, list, str, int, float, bool, None, nested)
is stored as JSON text. Nothing is pickled. :func:`encode` refuses anything that would
not come back as it went in, so every stored sample can be loaded later. Loading
imports the module a stored model names: read only stores you trust as much as your
code.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
from typing import Any

from pydantic import BaseModel

from organic_scoring.organic_queue._sqlite import SampleDecodeError

__all__ = ["decode", "encode"]

_JSON_SCALARS = (str, int, float, bool, type(None))


def encode(sample: Any, store: str) -> tuple[str, str | None, str]:
    """``(kind, model path or None, JSON text)`` for ``sample``, or a clear error.

    ``kind`` is ``"model"`` or ``"json"``. ``store`` names the queue class in errors.

    Raises:
        ValueError: A float JSON cannot carry (NaN, infinity), or a container that
            contains itself.
        TypeError: Neither a pydantic model nor a JSON value, or a model that cannot
            be imported by name or loaded back from its own JSON.
    """
    if isinstance(sample, BaseModel):
        cls = type(sample)
        path = _model_path(cls)
        try:
            body = sample.model_dump_json()
        except ValueError as exc:
            raise TypeError(f"cannot store a {cls.__qualname__}: {exc}") from exc
        try:
            cls.model_validate_json(body)
        except ValueError as exc:
            raise TypeError(
                f"cannot store a {cls.__qualname__}: it does not load back from its own "
                f"JSON ({exc})"
            ) from exc
        return "model", path, body
    _check_json(sample, [], set(), store)
    return "json", None, json.dumps(sample, allow_nan=False, ensure_ascii=False)


def decode(kind: str, model: str | None, body: str) -> Any:
    """The object stored as ``(kind, model, body)``.

    Raises:
        SampleDecodeError: It cannot be loaded (the model class moved, say); the
            error carries what was stored.
    """
    try:
        if kind == "json":
            return json.loads(body)
        if kind == "model" and model is not None:
            return _import_model(model).model_validate_json(body)
        problem = f"unknown kind {kind!r}"
    except (ImportError, AttributeError, TypeError, ValueError) as exc:
        what = model if kind == "model" else "JSON"
        raise SampleDecodeError(
            f"cannot load a stored {what} sample: {exc}", kind, model, body
        ) from exc
    raise SampleDecodeError(f"cannot load a stored sample: {problem}", kind, model, body)


def _check_json(value: Any, where: list[str | int], open_containers: set[int], store: str) -> None:
    """Raise unless ``value`` is a JSON value that comes back from JSON unchanged."""
    kind = type(value)
    if kind in _JSON_SCALARS:
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{_where(where)} is {value!r}; JSON has no NaN or infinity")
        return
    if kind is not dict and kind is not list:
        advice = "; store a list" if kind is tuple else ""
        raise TypeError(
            f"{_where(where)} is a {kind.__qualname__}{advice}: {store} stores pydantic "
            "models and JSON values (dict with str keys, list, str, int, float, bool, None)"
        )
    if id(value) in open_containers:
        raise ValueError(f"{_where(where)} contains itself")
    open_containers.add(id(value))
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(
                    f"{_where(where)} has a key of type {type(key).__qualname__} "
                    f"({key!r}); JSON object keys are str"
                )
            where.append(key)
            _check_json(item, where, open_containers, store)
            where.pop()
    else:
        for index, item in enumerate(value):
            where.append(index)
            _check_json(item, where, open_containers, store)
            where.pop()
    open_containers.discard(id(value))


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
        raise TypeError(
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
