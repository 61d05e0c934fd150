"""``redact``: no user's words in what the library keeps or logs, hooks still get them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from organic_scoring import OrganicScoringBase, Redacted
from organic_scoring._log import log
from organic_scoring.errors import IterationError
from support.axons import BITTENSOR_WARNINGS
from support.signed_http import Wallets, wallets  # noqa: F401 (fixture)
from support.transports import TRANSPORTS, intake

SECRET = "my card number is 4111 1111 1111 1111"


class Catch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@contextlib.contextmanager
def library_log() -> Iterator[Catch]:
    """Everything the library logs, at every level, formatted with tracebacks."""
    logger = logging.getLogger("test_redact.library")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    catch = Catch()
    logger.addHandler(catch)
    previous = log._target
    log._target = logger
    try:
        yield catch
    finally:
        log._target = previous
        logger.removeHandler(catch)


class Leaky(OrganicScoringBase):
    """Fails its queries with the prompt in the message, as real code often does."""

    def __init__(self, **kwargs: Any) -> None:
        self.errors: list[tuple[Any, str]] = []
        super().__init__(**kwargs)

    async def _on_organic_entry(self, synapse: Any) -> Any:
        self._organic_queue.add(synapse)

    async def _query_miners(self, sample: Any) -> Any:
        raise KeyError(sample["prompt"])

    async def _generate_rewards(self, sample: Any, responses: Any, reference: Any = None) -> Any:
        return {}

    async def _set_weights(self, rewards: Any) -> None:
        return None


class Reporting(Leaky):
    async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
        self.errors.append((sample, stage))


def _fail_once(scorer: OrganicScoringBase) -> IterationError:
    scorer._organic_queue.add({"prompt": SECRET, "id": 7})
    with pytest.raises(IterationError) as failed:
        asyncio.run(scorer.loop_iteration())
    return failed.value


def test_redact_true_keeps_no_sample_and_logs_no_message() -> None:
    scorer = Leaky(redact=True)
    with library_log() as caught:
        error = _fail_once(scorer)
    (kept,) = scorer.recent_failures
    assert kept.sample == Redacted("dict")
    assert repr(kept.sample) == "<redacted dict>"
    assert kept.stage == "query"
    assert kept.organic is True
    assert error.sample == Redacted("dict")
    text = "\n".join(caught.lines)
    assert "failed in the query stage: KeyError (message withheld: redact is on)" in text
    assert "_query_miners" in text  # where it came from is still there
    assert "4111" not in text


def test_hooks_still_get_the_real_sample() -> None:
    scorer = Reporting(redact=True)
    _fail_once(scorer)
    assert scorer.errors == [({"prompt": SECRET, "id": 7}, "query")]
    assert scorer.recent_failures[0].sample == Redacted("dict")


def test_a_function_chooses_what_is_kept_and_a_failing_one_keeps_nothing() -> None:
    scorer = Reporting(redact=lambda sample: {"id": sample["id"]})
    error = _fail_once(scorer)
    assert scorer.recent_failures[0].sample == {"id": 7}
    assert error.sample == {"id": 7}

    broken = Reporting(redact=lambda sample: sample["missing"])
    with library_log() as caught:
        error = _fail_once(broken)
    assert broken.recent_failures[0].sample == Redacted("dict")
    assert error.sample == Redacted("dict")
    assert any("redact raised KeyError" in line for line in caught.lines)
    assert "4111" not in "\n".join(caught.lines)


def test_without_redact_samples_and_messages_are_kept() -> None:
    scorer = Leaky()
    with library_log() as caught:
        error = _fail_once(scorer)
    assert scorer.recent_failures[0].sample == {"prompt": SECRET, "id": 7}
    assert error.sample == {"prompt": SECRET, "id": 7}
    assert SECRET in "\n".join(caught.lines)


def test_a_failing_error_hook_is_logged_without_its_message_under_redact() -> None:
    class BadReporter(Leaky):
        async def _on_iteration_error(self, sample: Any, stage: str, exc: BaseException) -> None:
            raise ValueError(f"could not store {sample['prompt']}")

    scorer = BadReporter(redact=True)
    with library_log() as caught:
        _fail_once(scorer)
    text = "\n".join(caught.lines)
    assert "_on_iteration_error raised while reporting a query failure: ValueError" in text
    assert "4111" not in text


def test_the_default_log_results_never_logs_the_sample() -> None:
    class Quiet(Leaky):
        async def _query_miners(self, sample: Any) -> Any:
            return {0: f"echo {sample['prompt']}"}

        async def _generate_reference(self, sample: Any) -> Any:
            return sample["prompt"]

        async def _generate_rewards(
            self, sample: Any, responses: Any, reference: Any = None
        ) -> Any:
            return {0: 1.0}

    scorer = Quiet()
    scorer._organic_queue.add({"prompt": SECRET})
    with library_log() as caught:
        logs = asyncio.run(scorer.loop_iteration())
    assert logs["is_organic_sample"] is True
    text = "\n".join(caught.lines)
    assert "iteration 1 (organic)" in text
    assert "4111" not in text


@pytest.mark.parametrize("bad", [1, "yes", None, ["x"]])
def test_redact_must_be_a_bool_or_a_function(bad: Any) -> None:
    with pytest.raises(ValueError, match="redact"):
        Leaky(redact=bad)


@BITTENSOR_WARNINGS
@pytest.mark.usefixtures("no_leaks")
@pytest.mark.parametrize("redact", [False, True])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_intakes_log_a_failing_handler_without_its_message_under_redact(
    transport: str,
    redact: bool,
    wallets: Wallets,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with intake(transport, wallets, monkeypatch, redact=redact) as driver:
        driver.scorer.failing.add("crash")
        with library_log() as caught:
            assert asyncio.run(driver.send(wallets.client, "crash")) == 500
            driver.answers_after(1)
    text = "\n".join(caught.lines)
    assert "_on_organic_entry raised for" in text
    # The handler's exception says "secret internals": kept only without redact.
    assert ("secret internals" in text) is not redact
    if redact:
        assert "RuntimeError (message withheld: redact is on)" in text
