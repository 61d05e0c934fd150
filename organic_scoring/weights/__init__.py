"""Scores to weights: a thread-safe moving-average score book and a chain emitter.

:class:`ScoreBook` keeps one exponential moving average per uid, can check per miner
that organic and synthetic samples are answered alike (:class:`Consistency`), and
saves itself atomically. :func:`emit_weights` sends its weights through whichever
bittensor major is installed and answers with a :class:`WeightsResult`.
"""

from __future__ import annotations

from organic_scoring.weights._book import ScoreBook
from organic_scoring.weights._consistency import Consistency
from organic_scoring.weights._emit import WeightsResult, emit_weights

__all__ = ["Consistency", "ScoreBook", "WeightsResult", "emit_weights"]
