"""What the tests share: waiting helpers, scorers, real axons and signed HTTP on loopback.

One module per concern: :mod:`support.waiting` (bounded waits), :mod:`support.loopback`
(wallets and ports), :mod:`support.scorers` (recording scorers), :mod:`support.axons`
(bittensor 9/10 axons and dendrites), :mod:`support.signed_http` (the HTTP intake),
:mod:`support.chain` (chain stand-ins for the examples), :mod:`support.load` (the
load-and-fault driver) and :mod:`support.queue_contract` (helpers of the queue suite).

Redis and several processes: :mod:`support.redis_server` (a real redis-server per
test, or one per test process), :mod:`support.processes` (child Python processes),
and the processes themselves, run with ``python -m``: :mod:`support.queue_workers`
(queue adders and samplers), :mod:`support.lease_workers` (scorer-lock keepers),
:mod:`support.scorer_worker` (a scorer) and :mod:`support.fleet_intake` (an intake
worker).
"""
