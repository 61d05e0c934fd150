"""Every default the library's signatures share, defined once and imported where needed."""

from __future__ import annotations

# -- the loop -------------------------------------------------------------------------

DEFAULT_TRIGGER_FREQUENCY_MIN = 2.0
"""``trigger_frequency_min`` when not given (capped at ``trigger_frequency``)."""

DEFAULT_STOP_TIMEOUT = 10.0
"""Seconds ``stop()`` lets in-flight iterations finish before cancelling them."""

ERROR_HOOK_TIMEOUT = 5.0
"""Seconds ``_on_iteration_error`` may take when no ``log_timeout`` is set."""

CANCEL_GRACE = 10.0
"""Seconds ``stop()`` waits beyond its timeout for cancelled iterations to report."""

JITTER_UTILISATION = 0.7
"""With jitter, the share of periods the smoothed organic arrival rate fills."""

JITTER_RATE_SMOOTHING = 16.0
"""With jitter, the arrival rate's averaging time, in units of ``trigger_frequency``."""

JITTER_ARRIVAL_LAG = 2.0
"""With jitter, how old an arrival must be (in ``trigger_frequency`` units) to count
towards the rate, so the arrivals that make the next sample organic do not also
shorten its period."""

JITTER_BACKLOG_SMOOTHING = 4.0
"""With jitter, the queue size's averaging time, in units of ``trigger_frequency``."""

POISSON_BACKLOG_GAIN = 0.1
"""Under ``"poisson"``, the chance of an organic slot per sample of smoothed backlog.
An organic sample then waits about ``1 / gain`` = 10 slots on average."""

# -- the weights ----------------------------------------------------------------------

GAP_FALSE_FLAG_RATE = 1e-4
"""``ScoreBook(gap_false_flag_rate=)``: the chance that a miner answering both kinds
alike is flagged at one check."""

# -- the intake -----------------------------------------------------------------------

DEFAULT_MAX_AGE = 10.0
"""Seconds a signed request stays fresh."""

DEFAULT_ALLOWED_SKEW = 2.0
"""Seconds a caller's clock may run ahead of ours."""

DEFAULT_MAX_BODY_BYTES = 1 << 20
"""1 MiB: the largest request body accepted."""

DEFAULT_BODY_TIMEOUT = 10.0
"""Seconds a caller has to send its whole body; a slower one gets 408."""

DEFAULT_UNVERIFIED_BYTES = 16 << 20
"""16 MiB: the most body bytes an intake reads at once before their signatures are
checked, over all callers (more: 503)."""

DEFAULT_UNVERIFIED_BYTES_PER_HOTKEY = 4 << 20
"""4 MiB: the same, per claimed hotkey (more: 429)."""

DEFAULT_MAX_CONCURRENT = 32
"""Organic requests an intake handles at once."""

DEFAULT_MAX_BACKLOG = 256
"""Organic requests allowed to wait for a handler slot (more: 429)."""

DEFAULT_HEADER_TIMEOUT = 10.0
"""Seconds a connection of the library's own server has to send a request's headers."""

DEFAULT_MAX_HEADER_BYTES = 32 * 1024
"""The most header bytes the library's own server reads for one request."""

# -- a fleet on Redis -----------------------------------------------------------------

DEFAULT_LOCK_PERIOD = 5.0
"""Seconds the scorer lock lasts unless renewed."""

DEFAULT_LEASE = 30.0
"""Seconds an organic sample handed out by a shared queue stays leased."""

DEFAULT_MAX_DELIVERIES = 3
"""Times a shared queue hands a sample out before it moves it to its dead letters."""

IDLE_NOTICE_AFTER = 60.0
"""Seconds without an iteration (at least two periods under ``"seconds"``) after which
the loop logs, once per run, what it is waiting for."""

LOOP_BLOCKED_AFTER = 0.5
"""Seconds an ``async def`` hook may block the scoring loop's event loop before the
watchdog names it (less when a stage timeout is shorter, never under 0.1 s)."""

DEFAULT_STUCK_AFTER = 300.0
"""Seconds an iteration may run before the loop counts it as stuck."""

DEFAULT_QUEUE_SIZE = 10_000
"""Samples an organic queue holds before it evicts the oldest."""

# -- weights --------------------------------------------------------------------------

DEFAULT_BLOCK_TIME = 12.0
"""Seconds per block, for a weight setter's waits (finney's block time)."""

DEFAULT_RETRY_BLOCKS = 10
"""Blocks a weight setter's background run waits after a refusal or an error."""
