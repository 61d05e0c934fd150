"""The library's messages go through bittensor's logger on 9/10 and `organic_scoring` on 11."""

from __future__ import annotations

import io
import logging

import pytest

from organic_scoring._compat import HAS_AXON, library_logger
from organic_scoring._log import log

pytestmark = pytest.mark.bittensor


class Catch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.mark.skipif(not HAS_AXON, reason="bittensor 9/10 only")
def test_messages_go_through_bittensor_logging_at_its_level() -> None:
    import bittensor as bt

    assert library_logger() is bt.logging
    catch = Catch()
    target = logging.getLogger("bittensor")
    target.addHandler(catch)
    try:
        bt.logging.set_warning()
        log.info("quiet at warning level")
        log.warning("heard at warning level")
        bt.logging.set_info()
        log.info("heard at info level")
    finally:
        target.removeHandler(catch)
        bt.logging.set_warning()
    ours = [m for m in catch.messages if m.startswith("organic_scoring:")]
    assert ours == [
        "organic_scoring: heard at warning level",
        "organic_scoring: heard at info level",
    ]


@pytest.mark.skipif(HAS_AXON, reason="bittensor 11 only")
def test_messages_go_to_the_standard_organic_scoring_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert library_logger() is logging.getLogger("organic_scoring")
    with caplog.at_level(logging.INFO, logger="organic_scoring"):
        log.debug("below the level")
        log.info("at the level")
    assert [r.getMessage() for r in caplog.records if r.name == "organic_scoring"] == [
        "at the level"
    ]


@pytest.mark.skipif(HAS_AXON, reason="bittensor 11 only")
def test_basic_config_prints_the_logger_name_once() -> None:
    # logging.basicConfig's format is "%(levelname)s:%(name)s:%(message)s"; the
    # message used to carry the name a second time.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(logging.BASIC_FORMAT))
    target = logging.getLogger("organic_scoring")
    target.addHandler(handler)
    try:
        log.warning("the queue is full")
    finally:
        target.removeHandler(handler)
    assert stream.getvalue() == "WARNING:organic_scoring:the queue is full\n"
