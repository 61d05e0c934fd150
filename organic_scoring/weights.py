"""Scores to weights: a thread-safe moving-average score book and a chain emitter.

::

    from organic_scoring.weights import ScoreBook, emit_weights

    book = ScoreBook.load(path) if os.path.exists(path) else ScoreBook(256, alpha=0.1)
    book.sync(metagraph.hotkeys)           # follow the subnet; reset replaced miners
    book.update(uids, rewards, organic=logs["is_organic_sample"])  # or update_from({uid: r})
    book.save(path)                        # atomic; survives a restart
    emit_weights(book, netuid=netuid, wallet=wallet, subtensor=subtensor)  # 9/10
    emit_weights(book, netuid=netuid, wallet=wallet)                       # 11

:class:`ScoreBook` keeps one exponential moving average per uid; only the uids
named in an update move, bad input is rejected whole, and :meth:`ScoreBook.weights`
never returns NaN. Told which rewards were organic, it also checks per miner that
organic and synthetic samples are answered alike (:meth:`ScoreBook.consistency`, a
:class:`Consistency`) and can weigh the two kinds and penalise a miner that does not.
:func:`emit_weights` sends the weights through whichever bittensor major is installed
and answers with a :class:`WeightsResult`.
"""

from __future__ import annotations

from organic_scoring._consistency import Consistency
from organic_scoring._emit_weights import WeightsResult, emit_weights
from organic_scoring._scorebook import ScoreBook
from organic_scoring._scorebook_file import FORMAT_VERSION, ScoreBookFileError

__all__ = [
    "FORMAT_VERSION",
    "Consistency",
    "ScoreBook",
    "ScoreBookFileError",
    "WeightsResult",
    "emit_weights",
]
