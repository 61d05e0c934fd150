"""OrganicScoringBase as a subclass author meets it: mistakes named as such."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy
import pytest

from organic_scoring.base import runtime
from organic_scoring.synth_dataset import default_dataset
from support.scorers import Letters, Recorder

pytestmark = pytest.mark.python_version


class Forgetful(Recorder):
    """A subclass whose __init__ never calls super().__init__()."""

    def __init__(self, **kwargs: Any) -> None:
        self.validator = "mine"


@pytest.mark.parametrize(
    "use",
    [
        lambda s: s.start(),
        lambda s: s.increment_step(),
        lambda s: s.stats,
        lambda s: s._organic_queue.add("x"),
        lambda s: asyncio.run(s.loop_iteration()),
    ],
    ids=["start", "increment_step", "stats", "_organic_queue", "loop_iteration"],
)
def test_forgotten_super_init_is_named_as_such(use: Any) -> None:
    scorer = Forgetful()
    with pytest.raises(AttributeError, match=r"Forgetful\.__init__ must call super\(\)\.__init__"):
        use(scorer)


def test_other_missing_attributes_read_as_usual() -> None:
    scorer = Recorder()
    assert scorer.samples == []
    with pytest.raises(AttributeError, match=r"^'Recorder' object has no attribute 'nope'$"):
        _ = scorer.nope
    assert not hasattr(scorer, "nope")
    assert getattr(scorer, "nope", 5) == 5
    assert not hasattr(Forgetful(), "_OrganicScoringBase__engine")


@pytest.mark.parametrize(
    ("bad", "phrase"),
    [
        ("default", "a string is not a dataset"),
        (b"default", "got bytes"),
        (5, "got int"),
        ([object()], r"synth_dataset\[0\] must be a SynthDatasetBase, got object"),
        (Letters, r"got the class Letters: pass an instance, Letters\(\.\.\.\)"),
        (default_dataset, r"got the function default_dataset: call it, default_dataset\(\)"),
        ([default_dataset], r"synth_dataset\[0\] .* got the function default_dataset: call"),
    ],
)
def test_a_bad_synth_dataset_is_a_value_error_naming_it(bad: Any, phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase) as caught:
        Recorder(synth_dataset=bad)
    assert "synth_dataset" in str(caught.value)


@pytest.mark.parametrize("bad", [None, "5", 2.5, [3]])
def test_a_step_that_is_not_an_int_is_refused_at_the_call(bad: Any) -> None:
    """``set_step(None)`` was stored, and the running loop stopped on its next
    comparison (``'<' not supported between instances of 'NoneType' and 'int'``)."""
    scorer = Recorder(trigger="steps")
    with pytest.raises(TypeError, match=r"set_step\(\) takes an int step count, got "):
        scorer.set_step(bad)
    with pytest.raises(TypeError, match=r"increment_step\(\) takes an int step count, got "):
        scorer.increment_step(bad)
    scorer.set_step(numpy.int64(4))  # a numpy integer (a block number, say) is an int
    scorer.increment_step(numpy.int64(1))
    assert runtime(scorer).trigger.steps == 5
