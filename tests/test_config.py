"""ScoringConfig: every validation rule, its error message, and the annealing formula."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from organic_scoring import ANY_HOTKEY
from organic_scoring._defaults import DEFAULT_TRIGGER_FREQUENCY_MIN
from organic_scoring.config import ScoringConfig
from support.identity import hotkey

pytestmark = pytest.mark.python_version

NUMBER_FIELDS = (
    "trigger_frequency",
    "trigger_frequency_min",
    "trigger_scaling_factor",
    "query_timeout",
    "reference_timeout",
    "rewards_timeout",
    "weights_timeout",
    "log_timeout",
    "backoff_initial",
    "backoff_max",
)
TIMEOUTS = (
    "query_timeout",
    "reference_timeout",
    "rewards_timeout",
    "weights_timeout",
    "log_timeout",
)
POSITIVE = ("trigger_frequency", "trigger_frequency_min", "trigger_scaling_factor", *TIMEOUTS)


def make(**kwargs: Any) -> ScoringConfig:
    """Build a config from untyped keyword arguments, as a caller's code would."""
    return ScoringConfig(**kwargs)


def rejects(**kwargs: Any) -> ValidationError:
    """Build a config that must fail; return the error for inspection."""
    with pytest.raises(ValidationError) as info:
        make(**kwargs)
    assert isinstance(info.value, ValueError), "callers may catch a plain ValueError"
    return info.value


def assert_names(error: ValidationError, field: str, *accepted: str) -> None:
    """The error points at ``field`` and its message says what is accepted."""
    text = str(error)
    assert field in text
    assert any(e["loc"][:1] == (field,) for e in error.errors()), error.errors()
    for phrase in accepted:
        assert phrase in text


def test_defaults() -> None:
    config = make()
    assert config.trigger == "seconds"
    assert config.trigger_frequency == 15
    assert config.trigger_frequency_min == DEFAULT_TRIGGER_FREQUENCY_MIN == 2
    assert config.trigger_scaling_factor == 5
    assert config.max_concurrent_iterations == 1
    assert all(getattr(config, name) is None for name in TIMEOUTS)
    assert (config.backoff_initial, config.backoff_max) == (0.5, 30)
    assert config.allowed_hotkeys is None


# trigger


@pytest.mark.parametrize("trigger", ["seconds", "steps"])
def test_trigger_accepts_seconds_and_steps(trigger: str) -> None:
    assert make(trigger=trigger).trigger == trigger


@pytest.mark.parametrize("bad", ["minutes", "Seconds", "", None, 1])
def test_trigger_error_lists_the_accepted_values(bad: Any) -> None:
    assert_names(rejects(trigger=bad), "trigger", "'seconds'", "'steps'")


# numbers


@pytest.mark.parametrize("field", POSITIVE)
@pytest.mark.parametrize("bad", [0, -1, -0.5])
def test_positive_fields_reject_zero_and_negatives(field: str, bad: float) -> None:
    extra = {"trigger_frequency_min": 0.1} if field == "trigger_frequency" and bad < 0 else {}
    assert_names(rejects(**{field: bad, **extra}), field, "greater than 0")


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("bad", [True, False, "3", b"3", [1], math.nan])
def test_number_fields_take_real_numbers_only(field: str, bad: Any) -> None:
    assert_names(rejects(**{field: bad}), field, "expected a number")


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("bad", [math.inf, -math.inf])
def test_number_fields_must_be_finite(field: str, bad: float) -> None:
    assert_names(rejects(**{field: bad}), field)


@pytest.mark.parametrize("field", TIMEOUTS)
def test_timeouts_are_none_or_positive(field: str) -> None:
    assert getattr(make(**{field: None}), field) is None
    assert getattr(make(**{field: 2}), field) == 2.0
    assert getattr(make(**{field: 0.01}), field) == 0.01


def test_numbers_are_stored_as_floats() -> None:
    config = make(trigger_frequency=10, trigger_scaling_factor=3)
    assert isinstance(config.trigger_frequency, float)
    assert isinstance(config.trigger_scaling_factor, float)


# max_concurrent_iterations


@pytest.mark.parametrize("good", [1, 2, 64])
def test_max_concurrent_iterations_accepts_ints(good: int) -> None:
    assert make(max_concurrent_iterations=good).max_concurrent_iterations == good


@pytest.mark.parametrize(
    ("bad", "phrase"),
    [
        (0, "greater than or equal to 1"),
        (-3, "greater than or equal to 1"),
        (2.0, "valid integer"),
        (True, "valid integer"),
        ("2", "valid integer"),
        (None, "valid integer"),
    ],
)
def test_max_concurrent_iterations_errors(bad: Any, phrase: str) -> None:
    assert_names(rejects(max_concurrent_iterations=bad), "max_concurrent_iterations", phrase)


# trigger_frequency_min: the default and the consistency rule


def test_trigger_frequency_one_alone_is_valid() -> None:
    config = make(trigger_frequency=1)
    assert config.trigger_frequency_min == 1
    steps = make(trigger="steps", trigger_frequency=1)
    assert steps.trigger_frequency_min == 1


@pytest.mark.parametrize(
    ("frequency", "expected_min"),
    [(0.25, 0.25), (1, 1), (1.5, 1.5), (2, 2), (3, 2), (15, 2), (1000, 2)],
)
def test_default_minimum_is_two_or_the_frequency(frequency: float, expected_min: float) -> None:
    assert make(trigger_frequency=frequency).trigger_frequency_min == expected_min


def test_explicit_none_minimum_means_the_default() -> None:
    assert make(trigger_frequency=1, trigger_frequency_min=None).trigger_frequency_min == 1
    assert make(trigger_frequency_min=None).trigger_frequency_min == 2


def test_explicit_minimum_is_kept() -> None:
    assert make(trigger_frequency=10, trigger_frequency_min=7).trigger_frequency_min == 7
    assert make(trigger_frequency=10, trigger_frequency_min=10).trigger_frequency_min == 10


def test_frequency_below_the_minimum_runs_at_the_floor_with_one_warning(
    library_log: list[str],
) -> None:
    # The original package accepted this (the prompting subnet ships min=5 and reads
    # the frequency from the environment) and ran at the floor.
    config = make(trigger_frequency=3, trigger_frequency_min=4)
    assert config.period(0) == 4
    assert config.period(1000) == 4
    assert library_log == [
        "trigger_frequency (3) is below trigger_frequency_min (4); "
        "the loop runs at the floor, every 4 seconds"
    ]
    steps = make(trigger="steps", trigger_frequency=2, trigger_frequency_min=5)
    assert steps.period(0) == 5
    assert library_log[1].endswith("every 5 steps")


def test_invalid_frequency_reports_only_the_frequency() -> None:
    error = rejects(trigger_frequency=-1)
    assert [e["loc"] for e in error.errors()] == [("trigger_frequency",)]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"trigger_frequency": 0.5}, "trigger_frequency"),
        ({"trigger_frequency": 5, "trigger_frequency_min": 0.5}, "trigger_frequency_min"),
    ],
)
def test_steps_need_whole_steps(kwargs: dict[str, float], field: str) -> None:
    error = rejects(trigger="steps", **kwargs)
    assert f"{field} must be at least 1 with trigger='steps'" in str(error)
    # The same numbers are fine for the seconds trigger.
    make(trigger="seconds", **kwargs)


# backoff


def test_backoff_bounds() -> None:
    assert make(backoff_initial=0, backoff_max=0).backoff_max == 0
    assert_names(rejects(backoff_initial=-0.1), "backoff_initial", "greater than or equal to 0")
    assert_names(rejects(backoff_max=-1, backoff_initial=0), "backoff_max", "greater than or equal")
    error = rejects(backoff_initial=3, backoff_max=1)
    assert "backoff_max (1) must not be below backoff_initial (3)" in str(error)


def test_backoff_doubles_up_to_its_cap_however_many_failures() -> None:
    config = make(backoff_initial=0.5, backoff_max=30)
    assert [config.backoff(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    # 0.5 * 2 ** 1024 is past a float: the 1,025th failure in a row (some eight hours
    # of them at the 30 s cap) raised OverflowError, which stopped the scoring loop.
    assert config.backoff(1025) == config.backoff(10**9) == 30.0
    assert make(backoff_initial=0, backoff_max=0).backoff(5000) == 0.0


# allowed_hotkeys


def test_allowed_hotkeys_become_a_frozenset_of_canonical_hotkeys() -> None:
    one, two = hotkey("one"), hotkey("two")
    config = make(allowed_hotkeys=[one, two, one])
    assert config.allowed_hotkeys == frozenset({one, two})
    # Another network prefix names the same key: kept in the canonical spelling.
    assert make(allowed_hotkeys=(hotkey("one", 0),)).allowed_hotkeys == frozenset({one})
    assert make(allowed_hotkeys=None).allowed_hotkeys is None
    assert make(allowed_hotkeys=ANY_HOTKEY).allowed_hotkeys is ANY_HOTKEY


def test_allowed_hotkeys_may_be_a_callable() -> None:
    def policy(caller: str) -> bool:
        return caller.startswith("5")

    assert make(allowed_hotkeys=policy).allowed_hotkeys is policy


@pytest.mark.parametrize(
    ("bad", "phrase"),
    [
        ("5Fa", "collection of SS58 hotkeys"),
        ([], "at least one hotkey"),
        (set(), "at least one hotkey"),
        ([1, 2], "not an SS58 address"),
        (["5Fa"], "'5Fa' is not an SS58 address"),
        (5, "collection"),
        ([["5Fa"]], "not an SS58 address"),
    ],
)
def test_allowed_hotkeys_errors(bad: Any, phrase: str) -> None:
    assert_names(rejects(allowed_hotkeys=bad), "allowed_hotkeys", phrase)


# model-wide rules


def test_unknown_parameters_are_refused_by_name() -> None:
    assert_names(rejects(trigger_frequncy=3), "trigger_frequncy", "Extra inputs are not permitted")


def test_config_is_frozen() -> None:
    config = make()
    with pytest.raises(ValidationError, match="frozen"):
        config.trigger_frequency = 3


# period(): the annealing formula


def test_period_seconds() -> None:
    config = make(trigger_frequency=15, trigger_frequency_min=2, trigger_scaling_factor=5)
    assert config.period(0) == 15.0
    assert config.period(1) == pytest.approx(14.8)
    assert config.period(10) == 13.0
    assert config.period(65) == 2.0  # exactly the floor
    assert config.period(66) == 2.0  # below the floor: clamped
    assert config.period(10**9) == 2.0
    assert isinstance(config.period(1), float)


def test_period_steps_is_a_whole_number() -> None:
    config = make(
        trigger="steps", trigger_frequency=10, trigger_frequency_min=3, trigger_scaling_factor=4
    )
    assert config.period(0) == 10
    assert config.period(1) == 9  # 9.75 rounds down
    assert config.period(4) == 9
    assert config.period(5) == 8
    assert config.period(28) == 3
    assert config.period(29) == 3  # 2.75 clamps up to the floor
    assert config.period(10**9) == 3
    assert all(config.period(n).is_integer() for n in range(60))


def test_period_steps_with_a_fractional_floor() -> None:
    config = make(trigger="steps", trigger_frequency=2.5)
    assert config.trigger_frequency_min == 2
    assert config.period(0) == 2


@given(
    trigger=st.sampled_from(["seconds", "steps"]),
    frequency=st.floats(min_value=1, max_value=1e4),
    floor_share=st.floats(min_value=0, max_value=1),
    scaling=st.floats(min_value=1e-3, max_value=1e3),
    queue_size=st.integers(min_value=0, max_value=10**7),
)
def test_period_matches_the_formula(
    trigger: str, frequency: float, floor_share: float, scaling: float, queue_size: int
) -> None:
    minimum = max(1.0, frequency * floor_share)
    config = make(
        trigger=trigger,
        trigger_frequency=frequency,
        trigger_frequency_min=minimum,
        trigger_scaling_factor=scaling,
    )
    expected = max(frequency - queue_size / scaling, minimum)
    if trigger == "steps":
        expected = int(expected)
    assert config.period(queue_size) == expected
    assert config.period(queue_size) <= config.period(0)
    assert config.period(queue_size + 1) <= config.period(queue_size)


# jitter and seed


def test_jitter_defaults_to_zero_and_no_seed() -> None:
    config = make()
    assert config.trigger_jitter == 0
    assert config.seed is None


@pytest.mark.parametrize("jitter", [0, 0.25, 0.999])
def test_jitter_accepts_zero_up_to_one(jitter: float) -> None:
    assert make(trigger_jitter=jitter).trigger_jitter == jitter


@pytest.mark.parametrize("bad", [-0.1, 1, 1.5, math.inf, True, "0.5", None])
def test_jitter_outside_zero_to_one_is_named(bad: Any) -> None:
    assert_names(rejects(trigger_jitter=bad), "trigger_jitter")


def test_jitter_with_the_steps_trigger_is_refused() -> None:
    error = rejects(trigger="steps", trigger_frequency=5, trigger_jitter=0.5)
    assert "trigger_jitter" in str(error)
    assert "trigger='seconds'" in str(error)
    assert make(trigger="steps", trigger_frequency=5, trigger_jitter=0).trigger_jitter == 0


@pytest.mark.parametrize("bad", ["3", 1.5, True])
def test_seed_must_be_an_int(bad: Any) -> None:
    assert_names(rejects(seed=bad), "seed")


@given(
    rate=st.floats(min_value=0, max_value=1e3),
    backlog=st.floats(min_value=0, max_value=1e6),
    frequency=st.floats(min_value=0.01, max_value=1e3),
    floor_share=st.floats(min_value=0.01, max_value=1),
)
def test_the_jittered_mean_stays_within_the_bounds(
    rate: float, backlog: float, frequency: float, floor_share: float
) -> None:
    config = make(
        trigger_frequency=frequency,
        trigger_frequency_min=frequency * floor_share,
        trigger_jitter=0.5,
    )
    mean = config.jittered_mean(rate, backlog)
    assert config.trigger_frequency_min <= mean <= frequency
    assert config.jittered_mean(rate, backlog + 1) <= mean  # more backlog, shorter
    assert config.jittered_mean(rate * 2 + 1e-3, backlog) <= mean  # more traffic, shorter
