"""Scores to weights: a thread-safe moving-average score book, and weights to the chain.

:class:`ScoreBook` keeps one exponential moving average per uid, can check per miner
that organic and synthetic samples are answered alike (:class:`Consistency`), and
saves itself atomically. :class:`WeightSetter` sets its weights on chain when the
chain allows it (rate limit, weights version, weight limits, commit-reveal), once
or in the background, on every bittensor major and with sync or async clients.
:func:`emit_weights` is the older one-shot, blocking call. Both answer with a
:class:`WeightsResult`.
"""

from __future__ import annotations

from organic_scoring.weights._book import ScoreBook
from organic_scoring.weights._consistency import Consistency
from organic_scoring.weights._emit import emit_weights
from organic_scoring.weights._result import Outcome, WeightSetterStats, WeightsResult
from organic_scoring.weights._setter import WeightSetter

__all__ = [
    "Consistency",
    "Outcome",
    "ScoreBook",
    "WeightSetter",
    "WeightSetterStats",
    "WeightsResult",
    "emit_weights",
]
