"""Put weights on chain through whichever bittensor is installed (9, 10 or 11)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from organic_scoring import _compat
from organic_scoring._log import log
from organic_scoring.weights._book import ScoreBook
from organic_scoring.weights._chain import judge, say, unpack
from organic_scoring.weights._result import WeightsResult

__all__ = ["WeightsResult", "check_weights", "emit_weights"]


def emit_weights(
    weights: ScoreBook | Mapping[int, float],
    *,
    netuid: int,
    wallet: Any = None,
    subtensor: Any = None,
    **options: Any,
) -> WeightsResult:
    """Set ``weights`` on subnet ``netuid`` and report how it went.

    ``weights`` is a :class:`ScoreBook` (its :meth:`~ScoreBook.as_dict` is sent) or a
    ``{uid: weight}`` mapping of non-negative finite numbers (only proportions matter).

    - bittensor 9/10: ``subtensor`` (a connected ``bt.Subtensor``) and ``wallet`` are
      required; calls ``subtensor.set_weights(wallet=..., netuid=..., uids=...,
      weights=..., **options)``, so ``options`` are that method's keywords
      (``version_key``, ``wait_for_inclusion``, ...).
    - bittensor 11: calls ``bt.set_weights(netuid, {uid: weight}, wallet=wallet,
      **options)``; ``options`` are its keywords (``hotkey``, ``network``,
      ``version_key``, ...). ``subtensor`` must not be given: bittensor 11 keeps its own
      connection, chosen with ``network=``.

    Blocking. A failure on the way to the chain is an unsuccessful result naming it,
    never an exception; with no positive weight nothing is sent. The ``outcome`` is
    judged as :class:`WeightSetter` judges it.

    Raises:
        TypeError: ``subtensor`` is async (a ``bt.AsyncSubtensor``): use
            :class:`WeightSetter`, which awaits it. Or a keyword the installed
            bittensor does not take (nothing was sent).
    """
    if isinstance(netuid, bool) or not isinstance(netuid, (int, np.integer)) or netuid < 0:
        raise ValueError(f"netuid must be an int >= 0, got {netuid!r}")
    netuid = int(netuid)
    chosen = weights.as_dict() if isinstance(weights, ScoreBook) else check_weights(weights)
    chosen = {uid: w for uid, w in chosen.items() if w > 0.0}

    sdk_set_weights = _compat.sdk_set_weights()
    if sdk_set_weights is None and subtensor is None:
        raise ValueError(
            f"subtensor is required on bittensor {_compat.BT_MAJOR}: pass the validator's "
            "connected bt.Subtensor"
        )
    if sdk_set_weights is None and _compat.is_async_subtensor(subtensor):
        raise TypeError(
            "emit_weights blocks and cannot drive an async subtensor "
            f"({type(subtensor).__name__}); use organic_scoring.weights.WeightSetter, which "
            "awaits it: await WeightSetter(netuid, wallet, subtensor).set(weights)"
        )
    if sdk_set_weights is None and wallet is None:
        raise ValueError(f"wallet is required on bittensor {_compat.BT_MAJOR}")
    if sdk_set_weights is not None and subtensor is not None:
        raise ValueError(
            "subtensor is not used on bittensor 11: bt.set_weights keeps its own connection; "
            "choose the chain with network=... instead"
        )
    if not chosen:
        return WeightsResult(
            False, "no uid has a positive weight; nothing was sent", outcome="rejected"
        )

    if sdk_set_weights is None:
        result = _emit_through_subtensor(subtensor, wallet, netuid, chosen, options)
    else:
        result = _emit_through_sdk(sdk_set_weights, wallet, netuid, chosen, options)
    if result.success:
        log.info(f"weights set on netuid {netuid} for {len(chosen)} uids")
    else:
        log.warning(f"setting weights on netuid {netuid} failed: {result.message}")
    return result


def _emit_through_subtensor(
    subtensor: Any, wallet: Any, netuid: int, weights: dict[int, float], options: dict[str, Any]
) -> WeightsResult:
    arguments = {
        "wallet": wallet,
        "netuid": netuid,
        "uids": np.fromiter(weights.keys(), dtype=np.int64, count=len(weights)),
        "weights": np.fromiter(weights.values(), dtype=np.float32, count=len(weights)),
        **options,
    }
    _check_keywords(subtensor.set_weights, arguments)
    try:
        raw = subtensor.set_weights(**arguments)
    except Exception as exc:  # a node that cannot be reached, a dropped connection ...
        return _failed(exc)
    if inspect.isawaitable(raw):  # an async stand-in the type check did not catch
        getattr(raw, "close", lambda: None)()
        raise TypeError(
            "subtensor.set_weights returned an awaitable: the subtensor is async; use "
            "organic_scoring.weights.WeightSetter, which awaits it"
        )
    success, message, _ = unpack(raw)  # bittensor 10's ExtrinsicResponse, 9's (bool, str)
    return _result(success, message, raw)


def _emit_through_sdk(
    sdk_set_weights: Any,
    wallet: Any,
    netuid: int,
    weights: dict[int, float],
    options: dict[str, Any],
) -> WeightsResult:
    chain_error = _compat.chain_error_class() or ()  # ``except ()`` catches nothing
    _check_keywords(
        sdk_set_weights, {"netuid": netuid, "weights": weights, "wallet": wallet, **options}
    )
    try:
        raw = sdk_set_weights(netuid, weights, wallet=wallet, **options)
    except chain_error as exc:  # the chain's verdict, in its words
        return _result(False, str(exc) or type(exc).__name__, exc)
    except Exception as exc:  # RpcConnectionError (no node answers), a dropped connection ...
        return _failed(exc)
    return _result(bool(raw.success), str(raw.message or ""), raw)


def _check_keywords(method: Any, arguments: dict[str, Any]) -> None:
    """Raise TypeError, before anything is sent, for a keyword ``method`` does not take."""
    try:
        signature = inspect.signature(method)
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        return
    signature.bind(**arguments)


def _failed(exc: Exception) -> WeightsResult:
    """An exception on the way to the chain, as an unsuccessful result that names it."""
    return _result(False, f"could not set weights: {say(exc)}", exc)


def _result(success: bool, message: str, raw: Any) -> WeightsResult:
    """The SDK's answer, its outcome judged as the weight setter judges it."""
    outcome = judge(raw).outcome if not success else "set"
    return WeightsResult(success, message, raw, outcome=outcome)


def check_weights(weights: object) -> dict[int, float]:
    if not isinstance(weights, Mapping):
        raise ValueError(
            f"weights must be a ScoreBook or a mapping of uid to weight, "
            f"got {type(weights).__name__}"
        )
    checked: dict[int, float] = {}
    for uid, weight in weights.items():
        if isinstance(uid, bool) or not isinstance(uid, (int, np.integer)) or uid < 0:
            raise ValueError(f"weights keys must be uids (ints >= 0), got {uid!r}")
        if isinstance(weight, bool) or not isinstance(
            weight, (int, float, np.integer, np.floating)
        ):
            raise ValueError(f"the weight of uid {uid} must be a number, got {weight!r}")
        value = float(weight)
        if not np.isfinite(value) or value < 0.0:
            raise ValueError(f"the weight of uid {uid} must be finite and >= 0, got {weight!r}")
        checked[int(uid)] = value
    return checked
