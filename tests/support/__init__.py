"""What the tests share: waiting helpers, scorers, real axons and signed HTTP on loopback.

One module per concern: :mod:`support.waiting` (bounded waits), :mod:`support.loopback`
(wallets and ports), :mod:`support.scorers` (recording scorers), :mod:`support.axons`
(bittensor 9/10 axons and dendrites), :mod:`support.signed_http` (the HTTP intake),
:mod:`support.chain` (chain stand-ins for the examples), :mod:`support.load` (the
load-and-fault driver) and :mod:`support.queue_contract` (helpers of the queue suite).
"""
