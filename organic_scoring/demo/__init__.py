"""The local end-to-end demo: ``organic-scoring demo`` (or ``python -m organic_scoring demo``).

A small subnet on 127.0.0.1, no chain: a validator, six simulated miners and a user
sending signed organic bursts through the intake that fits the installed bittensor.
"""

from organic_scoring.demo._run import run_demo

__all__ = ["run_demo"]
