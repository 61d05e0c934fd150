"""OrganicReplayDataset: a uniform, bounded reservoir of organic samples, replayed perturbed."""

from __future__ import annotations

import gc
import itertools
import json
import random
import threading
import weakref
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from organic_scoring.errors import ReplayFileError, SampleNotStorable
from organic_scoring.synth_dataset import OrganicReplayDataset, SequenceDataset, SynthDatasetEntry

# Upper 0.1% point of the chi-square distribution with 39 degrees of freedom.
CHI2_P001_39 = 72.055


class Prompt(BaseModel):
    """A module-level model, so a replay file can name it."""

    text: str
    tags: list[str] = []


class Blob:
    """An object whose live copies can be counted."""

    alive: weakref.WeakSet[Blob] = weakref.WeakSet()

    def __init__(self, n: int) -> None:
        self.n = n
        self.payload = bytearray(1024)
        Blob.alive.add(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> Blob:
        return Blob(self.n)


def _filled(values: list[Any], capacity: int = 100, **kwargs: Any) -> OrganicReplayDataset:
    dataset = OrganicReplayDataset(capacity, **kwargs)
    for value in values:
        dataset.offer(value)
    return dataset


# -- construction ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"capacity": 0}, "capacity must be an int of at least 1"),
        ({"capacity": 2.5}, "capacity must be an int"),
        ({"capacity": True}, "capacity must be an int"),
        ({"transform": "upper"}, "transform must be callable"),
        ({"redact": 3}, "redact must be callable"),
        ({"fallback": [1, 2]}, "fallback must be a dataset with a sample"),
        ({"seed": "7"}, "seed must be an int or None"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        OrganicReplayDataset(**kwargs)


# -- the reservoir ----------------------------------------------------------------------


def test_reservoir_is_uniform_over_everything_offered() -> None:
    stream, capacity, trials = 40, 8, 3000
    counts = [0] * stream
    for trial in range(trials):
        dataset = _filled(list(range(stream)), capacity, seed=trial)
        for value in dataset.stored():
            counts[value] += 1
    # Each trial keeps `capacity` of `stream` without replacement: item i is kept with
    # p = capacity/stream, so its count has variance trials * p * (1 - p).
    p = capacity / stream
    expected, variance = trials * p, trials * p * (1 - p)
    statistic = sum((count - expected) ** 2 / variance for count in counts)
    assert statistic < CHI2_P001_39, counts

    # The same statistic has the power to see a reservoir that favours recent samples.
    recent = [trials if i >= stream - capacity else 0 for i in range(stream)]
    assert sum((c - expected) ** 2 / variance for c in recent) > 100 * CHI2_P001_39


def test_memory_is_bounded_by_capacity() -> None:
    dataset = OrganicReplayDataset(10, seed=1)
    for n in range(1000):
        dataset.offer(Blob(n))
    gc.collect()
    assert len(dataset) == 10
    assert dataset.seen == 1000
    assert len(Blob.alive) <= 10


def test_the_first_capacity_samples_are_all_kept() -> None:
    dataset = _filled(list(range(5)), capacity=5, seed=3)
    assert sorted(dataset.stored()) == [0, 1, 2, 3, 4]


def test_offer_keeps_a_copy() -> None:
    original = {"prompt": "hello", "history": ["a"]}
    dataset = _filled([original], capacity=3)
    original["history"].append("changed by a hook")
    assert dataset.stored() == [{"prompt": "hello", "history": ["a"]}]


def test_none_is_not_offered() -> None:
    dataset = OrganicReplayDataset(3)
    assert dataset.offer(None) is False
    assert dataset.seen == 0


def test_redact_runs_before_anything_is_stored(tmp_path: Path) -> None:
    seen_by_redact: list[Any] = []

    def redact(sample: dict[str, str]) -> dict[str, str] | None:
        seen_by_redact.append(sample)
        if "drop me" in sample["prompt"]:
            return None
        return {"prompt": sample["prompt"].replace("alice@example.org", "<email>")}

    dataset = OrganicReplayDataset(2, redact=redact, seed=5)
    offered = [
        {"prompt": "write to alice@example.org"},
        {"prompt": "drop me entirely"},
        {"prompt": "mail alice@example.org again"},
        {"prompt": "a third, past capacity"},
    ]
    for sample in offered:
        dataset.offer(sample)
    assert seen_by_redact == offered  # every offered sample, including unkept ones
    assert dataset.seen == 3  # a sample redact refused does not count
    stored = json.dumps(dataset.stored())
    assert "alice@" not in stored
    assert "drop me" not in stored
    dataset.save(tmp_path / "replay.json")
    assert "alice@" not in (tmp_path / "replay.json").read_text()


def test_an_error_in_redact_stores_nothing() -> None:
    def redact(sample: Any) -> Any:
        raise RuntimeError("redactor down")

    dataset = OrganicReplayDataset(3, redact=redact)
    with pytest.raises(RuntimeError, match="redactor down"):
        dataset.offer({"prompt": "x"})
    assert len(dataset) == 0
    assert dataset.seen == 0


def test_concurrent_offers_and_samples_stay_bounded() -> None:
    dataset = OrganicReplayDataset(50, seed=9)
    writers, each = 4, 500
    start = threading.Barrier(writers + 1)
    drawn: list[Any] = []

    def write(w: int) -> None:
        start.wait()
        for i in range(each):
            dataset.offer({"w": w, "i": i})

    def read() -> None:
        start.wait()
        for _ in range(each):
            drawn.append(dataset.sample())

    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    threads.append(threading.Thread(target=read))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert dataset.seen == writers * each
    assert len(dataset) == 50
    assert all(s is None or set(s) == {"w", "i"} for s in drawn)


# -- sampling -----------------------------------------------------------------------------


def test_transform_is_applied_to_a_copy_with_the_datasets_rng() -> None:
    calls: list[tuple[Any, random.Random]] = []

    def transform(sample: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        calls.append((sample, rng))
        sample["prompt"] = sample["prompt"].upper() + f" #{rng.randrange(1000)}"
        return sample

    def run(seed: int) -> list[Any]:
        dataset = _filled(
            [{"prompt": "one"}, {"prompt": "two"}], capacity=5, transform=transform, seed=seed
        )
        out = [dataset.sample() for _ in range(20)]
        assert sorted(s["prompt"] for s in dataset.stored()) == ["one", "two"]  # unchanged
        return out

    first = run(11)
    assert all(s["prompt"].split(" #")[0] in {"ONE", "TWO"} for s in first)
    assert all(isinstance(rng, random.Random) for _, rng in calls)
    assert run(11) == first  # seeded: the same draws and the same perturbations
    assert run(12) != first


def test_never_the_same_stored_sample_twice_in_a_row() -> None:
    dataset = _filled(["a", "b"], capacity=5, seed=4)
    draws = [dataset.sample() for _ in range(200)]
    assert all(x != y for x, y in itertools.pairwise(draws))

    dataset = _filled(list(range(6)), capacity=6, seed=4)
    draws = [dataset.sample() for _ in range(3000)]
    assert all(x != y for x, y in itertools.pairwise(draws))
    assert set(draws) == set(range(6))


def test_one_stored_sample_alternates_with_the_fallback() -> None:
    # Never the same stored sample twice in a row: with one stored, the fallback
    # takes every other turn; with no fallback there is nothing else to hand out.
    alone = _filled(["only"], capacity=5)
    assert [alone.sample() for _ in range(3)] == ["only"] * 3
    dataset = OrganicReplayDataset(5, fallback=SequenceDataset(["fallback"]))
    dataset.offer("only")
    assert [dataset.sample() for _ in range(4)] == ["only", "fallback", "only", "fallback"]
    dataset.offer("second")
    assert len({dataset.sample() for _ in range(2)} - {"fallback"}) == 2


def test_empty_samples_the_fallback_or_returns_none() -> None:
    assert OrganicReplayDataset(3).sample() is None
    fallback = SequenceDataset(["from the fallback"])
    dataset = OrganicReplayDataset(3, fallback=fallback, transform=lambda s, rng: "transformed")
    assert dataset.sample() == "from the fallback"  # not transformed
    dataset.offer("organic")
    assert dataset.sample() == "transformed"


def test_peek_returns_a_copy_and_does_not_count_as_handed_out() -> None:
    dataset = _filled([{"p": 1}], capacity=2)
    peeked = dataset.peek()
    peeked["p"] = 2
    assert dataset.stored() == [{"p": 1}]
    assert OrganicReplayDataset(1).peek() is None


# -- persistence --------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    samples: list[Any] = [
        {"prompt": "héllo", "n": 3, "nested": [1.5, None, True]},
        "plain text",
        Prompt(text="a model", tags=["x"]),
        SynthDatasetEntry(roles=["user"], messages=["hi"], organic=True, task="qa"),
    ]
    dataset = _filled(samples, capacity=10, seed=1)
    for _ in range(3):
        dataset.offer(None)
    path = tmp_path / "replay.json"
    dataset.save(path)

    loaded = OrganicReplayDataset(10, seed=2)
    assert loaded.load(path) == 4
    assert loaded.seen == 4
    assert loaded.stored() == samples
    assert isinstance(loaded.stored()[2], Prompt)
    assert [f for f in tmp_path.iterdir()] == [path]  # no temporary file left behind


def test_load_keeps_seen_so_the_reservoir_carries_on_uniformly(tmp_path: Path) -> None:
    dataset = _filled(list(range(500)), capacity=20, seed=1)
    dataset.save(tmp_path / "r.json")
    loaded = OrganicReplayDataset(20)
    loaded.load(tmp_path / "r.json")
    assert loaded.seen == 500
    assert sorted(loaded.stored()) == sorted(dataset.stored())


def test_load_into_a_smaller_capacity_keeps_a_subset(tmp_path: Path) -> None:
    _filled(list(range(30)), capacity=30).save(tmp_path / "r.json")
    small = OrganicReplayDataset(5, seed=3)
    assert small.load(tmp_path / "r.json") == 5
    stored = small.stored()
    assert len(set(stored)) == 5
    assert set(stored) <= set(range(30))


def test_load_decodes_no_more_than_it_keeps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from organic_scoring.synth_dataset import _replay

    _filled(list(range(300)), capacity=300).save(tmp_path / "r.json")
    decoded = []
    real = _replay.decode

    def counting(*args: Any) -> Any:
        decoded.append(args)
        return real(*args)

    monkeypatch.setattr(_replay, "decode", counting)
    assert OrganicReplayDataset(5, seed=3).load(tmp_path / "r.json") == 5
    assert len(decoded) == 5


def test_save_refuses_what_it_cannot_store_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    _filled(["kept"]).save(path)
    before = path.read_bytes()
    dataset = _filled(["fine", {"bad": object()}])
    with pytest.raises(SampleNotStorable, match=r"stored sample 1: sample\['bad'\] is a object"):
        dataset.save(path)
    assert path.read_bytes() == before
    with pytest.raises(ValueError, match="NaN"):
        _filled([{"x": float("nan")}]).save(path)


def test_missing_file_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        OrganicReplayDataset().load(tmp_path / "nothing.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("not json", "not valid JSON"),
        ('{"format": "something else"}', "not a replay file"),
        ("[1, 2]", "not a replay file"),
        ('{"format": "organic_scoring.replay", "version": 2}', "unknown format version 2"),
        ('{"format": "organic_scoring.replay", "version": "1"}', "version"),
        ('{"format": "organic_scoring.replay", "version": 1, "seen": -1}', "seen"),
        ('{"format": "organic_scoring.replay", "version": 1, "seen": 0}', "samples"),
        (
            '{"format": "organic_scoring.replay", "version": 1, "seen": 1, "samples": [{}]}',
            r"samples\[0\]",
        ),
    ],
)
def test_bad_file_is_a_clear_error(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    dataset = _filled(["untouched"])
    with pytest.raises(ReplayFileError, match=match):
        dataset.load(path)
    assert dataset.stored() == ["untouched"]


def test_a_sample_that_no_longer_loads_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    _filled(["good", Prompt(text="renamed later")], seed=1).save(path)
    document = json.loads(path.read_text())
    for record in document["samples"]:
        if record["kind"] == "model":
            record["model"] = "tests_nowhere:Gone"
    path.write_text(json.dumps(document))
    dataset = OrganicReplayDataset()
    assert dataset.load(path) == 1
    assert dataset.stored() == ["good"]
