"""The intake gate's settings: limits (:class:`IntakeSettings`), who may call
(:func:`permitted_validators`, :class:`Quota`) and where nonces are remembered
(:class:`InMemoryNonceStore`, :class:`RedisNonceStore`, any :class:`NonceStore`)."""

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
