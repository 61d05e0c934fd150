"""OrganicScoringBase as a subclass author meets it: mistakes named as such."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

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
