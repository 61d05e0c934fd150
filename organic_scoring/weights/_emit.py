"""Put weights on chain through whichever bittensor is installed (9, 10 or 11)."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from organic_scoring import _compat
from organic_scoring._log import log
from organic_scoring.weights._book import ScoreBook, check_int
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

    Blocking. A failure on the way to the chain is an unsuccessful result, never an
    exception; with no positive weight nothing is sent.

    Raises:
        TypeError: ``subtensor`` is async (a ``bt.AsyncSubtensor``): use
            :class:`WeightSetter`, which awaits it. Or a keyword the installed
            bittensor does not take (nothing was sent).
    """
    netuid = check_int(netuid, "netuid")
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
        uids = np.fromiter(chosen.keys(), dtype=np.int64, count=len(chosen))
        values = np.fromiter(chosen.values(), dtype=np.float32, count=len(chosen))
        arguments = {"wallet": wallet, "netuid": netuid, "uids": uids, "weights": values}
        result = _send(subtensor.set_weights, (), {**arguments, **options})
    else:
        result = _send(sdk_set_weights, (netuid, chosen), {"wallet": wallet, **options})
    if result.success:
        log.info(f"weights set on netuid {netuid} for {len(chosen)} uids")
    else:
        log.warning(f"setting weights on netuid {netuid} failed: {result.message}")
    return result


def _send(set_weights: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> WeightsResult:
    """One call of the SDK's weights function, its answer (or exception) as a result."""
    try:
        signature = inspect.signature(set_weights)
    except (TypeError, ValueError):  # no signature to read: the call itself will tell
        pass
    else:
        signature.bind(*args, **kwargs)  # TypeError for a keyword it does not take
    chain_error = _compat.chain_error_class() or ()  # ``except ()`` catches nothing
    try:
        raw = set_weights(*args, **kwargs)
    except chain_error as exc:  # 11: the chain's verdict, in its words
        return _result(False, str(exc) or type(exc).__name__, exc)
    except Exception as exc:  # no node answers, a dropped connection ...
        return _result(False, f"could not set weights: {say(exc)}", exc)
    if inspect.isawaitable(raw):  # an async stand-in the type check did not catch
        getattr(raw, "close", lambda: None)()
        raise TypeError(
            "subtensor.set_weights returned an awaitable: the subtensor is async; use "
            "organic_scoring.weights.WeightSetter, which awaits it"
        )
    success, message, _ = unpack(raw)  # 11's ExtrinsicResult, 10's ExtrinsicResponse, 9's pair
    return _result(success, message, raw)


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
