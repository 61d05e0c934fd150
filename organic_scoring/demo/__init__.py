"""The local end-to-end demo: ``organic-scoring demo`` (or ``python -m organic_scoring demo``).

A small subnet on 127.0.0.1 with no chain and no internet: a validator built on
:class:`~organic_scoring.OrganicScoringBase`, taking organic traffic through the
intake that fits the installed bittensor (an axon on 9/10, signed HTTP on 11; or
signed HTTP with Epistula on any major: ``--intake http``, ``--protocol epistula``);
six simulated miners of different quality and latency; a user sending signed
organic requests in bursts, with quiet spells in which the loop sends synthetic
probes: earlier user prompts spliced together by an
:class:`~organic_scoring.synth_dataset.OrganicReplayDataset` (the shipped dataset
until the first one), at jittered times (``trigger_jitter``); and a
:class:`~organic_scoring.weights.ScoreBook` turning rewards into weights.
"""

from organic_scoring.demo._run import run_demo

__all__ = ["run_demo"]
