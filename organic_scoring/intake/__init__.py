"""The intake gate: the one pipeline behind every organic intake, and its nonce stores.

Every transport (the axon of bittensor 9/10, btauth/1 and Epistula signed HTTP) adapts
its wire format to the gate, so the allow-list, hooks, replay protection, admission and
accounting are the same whichever way a request arrives. What a validator configures
here: the limits (:class:`IntakeSettings`), who may call
(:func:`permitted_validators`, :class:`Quota`) and where nonces are remembered:
:class:`InMemoryNonceStore` (the default, one process) or :class:`RedisNonceStore`
(a fleet), or any :class:`NonceStore`.
"""

from organic_scoring.intake._identity import permitted_validators
from organic_scoring.intake._quota import Quota
from organic_scoring.intake._redis_nonce import RedisNonceStore
from organic_scoring.intake._replay import InMemoryNonceStore, NonceStore
from organic_scoring.intake._settings import IntakeSettings

__all__ = [
    "InMemoryNonceStore",
    "IntakeSettings",
    "NonceStore",
    "Quota",
    "RedisNonceStore",
    "permitted_validators",
]
