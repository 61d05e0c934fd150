"""The intake gate: one transport-agnostic pipeline behind every organic intake.

Every transport (the axon of bittensor 9/10, btauth/1 and Epistula signed HTTP) is a
thin adapter that turns its wire format into the :class:`Gate`'s inputs: the same
allow-list, hooks, verdict and priority rules, replay protection, admission and
accounting, with the same statuses, whichever way a request arrives. A custom
intake can use it too: build a ``Gate(scoring, "my-transport")`` and call its steps
in the order its documentation gives.
"""

from organic_scoring.intake._admission import AdmissionGate, BacklogFull
from organic_scoring.intake._gate import DEFAULT_ALLOWED_SKEW, DEFAULT_MAX_AGE, Gate, Refused
from organic_scoring.intake._replay import (
    Freshness,
    InMemoryNonceStore,
    NonceStore,
    NonceStoreFailure,
)
from organic_scoring.intake._request_type import request_type_of

__all__ = [
    "DEFAULT_ALLOWED_SKEW",
    "DEFAULT_MAX_AGE",
    "AdmissionGate",
    "BacklogFull",
    "Freshness",
    "Gate",
    "InMemoryNonceStore",
    "NonceStore",
    "NonceStoreFailure",
    "Refused",
    "request_type_of",
]
