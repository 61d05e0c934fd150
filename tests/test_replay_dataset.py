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
from organic_scoring.synth_dataset import (
    OrganicReplayDataset,
    SequenceDataset,
    SynthDatasetBase,
    SynthDatasetEntry,
    splice_words,
)

# Upper 0.1% point of the chi-square distribution with 39 degrees of freedom.
CHI2_P001_39 = 72.055


class Prompt(BaseModel):
    """A module-level model, so a replay file can name it."""

    text: str
    tags: list[str] = []


class Counting(SynthDatasetBase):
    """A fallback whose every sample is new."""

    def __init__(self, name: str) -> None:
        self.name, self.n = name, 0

    def sample(self) -> str:
        self.n += 1
        return f"{self.name} {self.n}"


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
    """A dataset fed ``values``, replaying from the first sample on unless told otherwise."""
    kwargs.setdefault("min_samples", 1)
    kwargs.setdefault("cooldown", 0)
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
        ({"min_samples": 0}, "min_samples must be an int of at least 1"),
        ({"cooldown": -1}, "cooldown must be an int of at least 0"),
        ({"remember": 0}, "remember must be an int of at least 1"),
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


def _tagged(sample: Any, rng: random.Random) -> Any:
    """A transform that makes every probe new: the stored value and a random tag."""
    return f"{sample} #{rng.getrandbits(64)}"


def _base(probe: Any) -> Any:
    return probe.split(" #")[0] if isinstance(probe, str) else probe


def test_transform_is_applied_to_a_copy_with_the_datasets_rng() -> None:
    calls: list[tuple[Any, random.Random]] = []

    def transform(sample: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        calls.append((sample, rng))
        sample["prompt"] = sample["prompt"].upper() + f" #{rng.getrandbits(64)}"
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
    dataset = _filled(["a", "b"], capacity=5, seed=4, transform=_tagged)
    draws = [_base(dataset.sample()) for _ in range(200)]
    assert all(x != y for x, y in itertools.pairwise(draws))

    dataset = _filled(list(range(6)), capacity=6, seed=4, transform=_tagged)
    draws = [_base(dataset.sample()) for _ in range(3000)]
    assert all(x != y for x, y in itertools.pairwise(draws))
    assert set(draws) == {str(n) for n in range(6)}


def test_one_stored_sample_alternates_with_the_fallback() -> None:
    # Never the same stored sample twice in a row: with one stored, the fallback
    # takes every other turn; with no fallback there is nothing to hand out then.
    alone = _filled(["only"], capacity=5, transform=_tagged)
    assert [_base(alone.sample()) for _ in range(4)] == ["only", None, "only", None]
    dataset = _filled(["only"], capacity=5, transform=_tagged, fallback=Counting("fallback"))
    assert [_base(dataset.sample()) for _ in range(4)] == [
        "only",
        "fallback 1",
        "only",
        "fallback 2",
    ]
    dataset.offer("second")
    assert len({_base(dataset.sample()) for _ in range(2)} - {"fallback 3"}) == 2


def test_empty_samples_the_fallback_or_returns_none() -> None:
    assert OrganicReplayDataset(3).sample() is None
    fallback = SequenceDataset(["from the fallback"])
    dataset = _filled([], 3, fallback=fallback, transform=lambda s, rng: "transformed")
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
        ('{"format": "organic_scoring.replay", "version": 3}', "unknown format version 3"),
        ('{"format": "organic_scoring.replay", "version": 0}', "unknown format version 0"),
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


# -- no probe a miner has seen (issue 24) ---------------------------------------------------


def _recase(sample: Any, rng: random.Random) -> Any:
    """A transform that changes nothing but case and whitespace."""
    return {**sample, "prompt": "  " + sample["prompt"].upper().replace(" ", "\n ")}


def test_a_probe_is_never_a_request_that_went_out_even_recased() -> None:
    organic = [{"prompt": f"question number {n} about lists"} for n in range(5)]
    fallback = Counting("fallback")
    dataset = _filled(organic, transform=_recase, fallback=fallback, seed=1)
    probes = [dataset.sample() for _ in range(10)]
    assert probes == [f"fallback {n}" for n in range(1, 11)]


@pytest.mark.parametrize(
    "disguise",
    [
        lambda s: s.rstrip("?") + ".",  # punctuation
        lambda s: s.replace(" ", " \u200b", 1),  # a zero-width space
        lambda s: s.replace("a", "\uff41"),  # full-width letters (NFKC)
        lambda s: s.replace("e", "e\u0301"),  # an accent
    ],
    ids=["punctuation", "zero-width", "full-width", "accent"],
)
def test_a_probe_is_never_a_request_that_went_out_in_disguise(disguise: Any) -> None:
    # A miner compares what it reads: punctuation, invisible characters and look-alike
    # forms do not make a remembered request new.
    dataset = _filled(
        [{"prompt": "How do I find the wallet file on my machine?"}],
        transform=lambda s, rng: {"prompt": disguise(s["prompt"])},
        fallback=Counting("fallback"),
    )
    assert dataset.sample() == "fallback 1"


def test_a_probe_never_repeats_an_earlier_probe() -> None:
    dataset = _filled(
        [{"prompt": "how do I sort a list"}, {"prompt": "how do I reverse a string"}],
        transform=lambda s, rng: {**s, "prompt": s["prompt"] + " in Python"},
        fallback=Counting("fallback"),
        seed=2,
    )
    probes = [dataset.sample() for _ in range(6)]
    replayed = [p["prompt"] for p in probes if isinstance(p, dict)]
    assert sorted(replayed) == [
        "how do I reverse a string in Python",
        "how do I sort a list in Python",
    ]
    assert [p for p in probes if isinstance(p, str)] == [f"fallback {n}" for n in range(1, 5)]


def test_a_transform_that_cannot_change_a_sample_makes_the_dataset_fall_back() -> None:
    dataset = _filled(
        [{"prompt": "hello there"}, {"prompt": "good morning"}],
        transform=lambda s, rng: None,
        fallback=Counting("fallback"),
    )
    assert [dataset.sample() for _ in range(3)] == ["fallback 1", "fallback 2", "fallback 3"]
    # Without a transform nothing stored can go out again as it was.
    plain = _filled([{"prompt": "hello there"}], fallback=Counting("plain"))
    assert plain.sample() == "plain 1"


def _chat(*turns: str, **metadata: Any) -> dict[str, Any]:
    roles = ["user", "assistant"] * len(turns)
    return {
        "messages": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)],
        **metadata,
    }


def test_a_multi_turn_probe_never_reuses_a_history_that_went_out() -> None:
    seen = _chat("how do I sort a list", "use sorted(items)", "and in reverse order?")

    def last_turn_only(sample: Any, rng: random.Random) -> Any:
        sample["messages"][-1]["content"] = f"something new {rng.getrandbits(32)}"
        return sample

    dataset = _filled([seen], transform=last_turn_only, fallback=Counting("f"))
    assert dataset.sample() == "f 1"  # the history went out with the organic request

    def opening_only(sample: Any, rng: random.Random) -> Any:
        sample["messages"] = [*sample["messages"][:2], {"role": "user", "content": "and why?"}]
        return sample

    dataset = _filled([seen], transform=opening_only, fallback=Counting("f"))
    assert dataset.sample() == "f 1"  # its first two turns are an opening that went out

    def every_turn(sample: Any, rng: random.Random) -> Any:
        for message in sample["messages"]:
            message["content"] = f"{message['content']} ({rng.getrandbits(32)})"
        return sample

    dataset = _filled([seen], transform=every_turn, fallback=Counting("f"))
    probe = dataset.sample()
    assert probe != "f 1"
    assert [m["role"] for m in probe["messages"]] == ["user", "assistant", "user"]


def test_a_probe_never_carries_a_message_that_went_out_verbatim() -> None:
    # A message a miner received, handed out again under a new history or beside
    # rewritten metadata, is still a message it remembers.
    prompt = SynthDatasetEntry(
        roles=["user"],
        messages=["Quantum entanglement explained simply"],
        note="the user is on the mobile app today via wifi",
    )
    donor = {"note": "the user is on the desktop app now"}
    dataset = _filled(
        [prompt],
        transform=lambda s, rng: splice_words(s, donor, rng),  # only the note splices
        fallback=Counting("f"),
    )
    assert dataset.sample() == "f 1"

    def retouch(*indices: int) -> Any:
        def transform(sample: Any, rng: random.Random) -> Any:
            for index in indices:
                sample["messages"][index]["content"] += f" ({rng.getrandbits(32)})"
            return sample

        return transform

    chat = _chat(
        "what is a subnet",
        "a market for one task",
        "how do I register one",
        "use btcli subnets register",
        "what does it cost",
    )
    for changed in [(0,), (0, 4), (3, 4), (0, 1, 3, 4)]:
        dataset = _filled([chat], transform=retouch(*changed), fallback=Counting("f"))
        assert dataset.sample() == "f 1", changed

    # The first turn (a system prompt, say) may recur; every other turn is new.
    dataset = _filled([chat], transform=retouch(1, 2, 3, 4), fallback=Counting("f"))
    assert dataset.sample() != "f 1"


def test_a_system_prompt_every_request_shares_does_not_block_replay() -> None:
    # [system, question] probes were refused for carrying a history (the system
    # prompt) that went out: replay of the commonest chat shape always fell back.
    system = "You are a helpful assistant for the Bittensor network."
    organic = [_system_chat(system, f"how do I stake on subnet {n}") for n in range(5)]
    dataset = _filled(
        organic,
        transform=lambda s, rng: {
            **s,
            "messages": [
                s["messages"][0],
                {"role": "user", "content": f"new question {rng.getrandbits(32)}"},
            ],
        },
        fallback=Counting("f"),
    )
    probe = dataset.sample()
    assert probe != "f 1"
    assert probe["messages"][0]["content"] == system
    # A first turn that went out in one conversation only is still its history.
    alone = _filled(
        [_system_chat("what is a subnet exactly", "it is a market")],
        transform=lambda s, rng: {
            **s,
            "messages": [s["messages"][0], {"role": "user", "content": "something new"}],
        },
        fallback=Counting("f"),
    )
    assert alone.sample() == "f 1"


def test_a_system_prompt_beside_the_prompt_does_not_block_replay() -> None:
    # The same with the system prompt in a field of its own: a text that went out in
    # several requests may recur; one request's own text may not.
    system = "You are a helpful assistant for the Bittensor network."
    organic = [{"system": system, "prompt": f"how do I stake on subnet {n}"} for n in range(5)]

    def new_prompt(sample: Any, rng: random.Random) -> Any:
        return {**sample, "prompt": f"new question {rng.getrandbits(32)}"}

    probe = _filled(organic, transform=new_prompt, fallback=Counting("f")).sample()
    assert probe != "f 1"
    assert probe["system"] == system

    def new_system(sample: Any, rng: random.Random) -> Any:
        return {**sample, "system": f"You are terse {rng.getrandbits(32)}"}

    dataset = _filled(organic, transform=new_system, fallback=Counting("f"))
    assert dataset.sample() == "f 1"  # the old prompt beside a new system prompt


def test_a_redacted_copy_does_not_make_its_prompt_shared() -> None:
    # Offered as it came and as redacted, one request is remembered twice; when the
    # redaction changed another text, the second copy looked like a new request
    # carrying the same prompt, so the prompt counted as shared and could go out again.
    from organic_scoring.synth_dataset import Pseudonymizer

    organic = {
        "prompt": "how do I stake on subnet seven",
        "note": "from alice@example.org this morning",
    }

    def new_note(sample: Any, rng: random.Random) -> Any:
        return {**sample, "note": f"from someone else {rng.getrandbits(32)}"}

    dataset = _filled(
        [organic], redact=Pseudonymizer(b"key"), transform=new_note, fallback=Counting("f")
    )
    assert dataset.sample() == "f 1"


def test_a_tag_every_request_carries_does_not_block_replay() -> None:
    # A one-item list of text in the metadata (tags=["machine learning"]) is read as
    # a lone message: once it had gone out, every probe that kept it was refused.
    organic = [
        SynthDatasetEntry(
            roles=["user"], messages=[f"how do I train model {n}"], tags=["machine learning"]
        )
        for n in range(5)
    ]

    def new_prompt(sample: Any, rng: random.Random) -> Any:
        return sample.model_copy(update={"messages": [f"new question {rng.getrandbits(32)}"]})

    probe = _filled(organic, transform=new_prompt, fallback=Counting("f")).sample()
    assert probe != "f 1"
    assert probe.tags == ["machine learning"]

    def new_tags(sample: Any, rng: random.Random) -> Any:
        return sample.model_copy(update={"tags": [f"new tag {rng.getrandbits(32)}"]})

    dataset = _filled(organic, transform=new_tags, fallback=Counting("f"))
    assert dataset.sample() == "f 1"  # the old prompt under a new tag


def _system_chat(first: str, second: str) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": first}, {"role": "user", "content": second}]}


def test_a_probe_is_never_the_opening_turn_of_a_conversation_that_went_out() -> None:
    dataset = _filled(
        [_chat("how do I sort a list", "use sorted(items)", "and in reverse order?")],
        transform=lambda s, rng: {"prompt": s["messages"][0]["content"]},
        fallback=Counting("f"),
    )
    assert dataset.sample() == "f 1"


def test_the_raw_and_the_redacted_request_both_count_as_sent() -> None:
    dataset = _filled(
        [{"prompt": "mail alice@example.org about the invoice"}],
        redact=lambda s: {"prompt": s["prompt"].replace("alice@example.org", "bob@mail.net")},
        transform=lambda s, rng: {
            "prompt": s["prompt"].replace("bob@mail.net", "alice@example.org")
        },
        fallback=Counting("f"),
    )
    assert dataset.sample() == "f 1"  # it would give the organic request back


def test_a_request_remembered_twice_costs_the_memory_of_one() -> None:
    # Each offer is remembered as it came and as redacted (the same texts here): the
    # second copy must not push older requests out of a small memory.
    organic = [{"prompt": f"tell me about topic {n}"} for n in range(4)]
    dataset = _filled(
        organic,
        redact=lambda s: dict(s),
        remember=6,  # a prompt costs two digests: three requests fill it
        transform=lambda s, rng: {"prompt": "tell me about topic 0", "note": "sent again"},
        fallback=Counting("f"),
    )
    assert dataset.sample() == "f 1"  # the first request is still remembered


def test_what_went_out_is_remembered_across_save_and_load(tmp_path: Path) -> None:
    def suffix(sample: Any, rng: random.Random) -> Any:
        return {"prompt": sample["prompt"] + " please"}

    organic = [{"prompt": f"tell me about topic {n}"} for n in range(3)]
    dataset = _filled(organic, transform=suffix, seed=3)
    first = [dataset.sample() for _ in range(3)]
    assert sorted(p["prompt"] for p in first) == sorted(o["prompt"] + " please" for o in organic)
    dataset.save(tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["version"] == 2

    restarted = OrganicReplayDataset(
        100, transform=suffix, min_samples=1, fallback=Counting("f"), seed=4
    )
    assert restarted.load(tmp_path / "r.json") == 3
    assert [restarted.sample() for _ in range(3)] == ["f 1", "f 2", "f 3"]


def test_loaded_samples_wait_out_the_cooldown(tmp_path: Path) -> None:
    # A replay file does not say when its samples arrived: the newest may have come
    # just before a restart, and were replayable at once after it.
    _filled([f"question {n}" for n in range(5)]).save(tmp_path / "r.json")
    dataset = OrganicReplayDataset(
        10, transform=_tagged, min_samples=1, cooldown=2, fallback=Counting("f")
    )
    dataset.load(tmp_path / "r.json")
    assert [dataset.sample() for _ in range(2)] == ["f 1", "f 2"]
    assert not dataset.sample().startswith("f ")


def test_a_version_1_file_still_loads_and_its_samples_count_as_sent(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(
        json.dumps(
            {
                "format": "organic_scoring.replay",
                "version": 1,
                "seen": 2,
                "samples": [{"kind": "json", "model": None, "body": '{"prompt": "old question"}'}],
            }
        )
    )
    dataset = OrganicReplayDataset(
        10, transform=lambda s, rng: s, min_samples=1, fallback=Counting("f")
    )
    assert dataset.load(path) == 1
    assert dataset.stored() == [{"prompt": "old question"}]
    assert dataset.sample() == "f 1"


def test_a_long_conversation_is_remembered_in_linear_time() -> None:
    # offer() remembers every opening of a conversation, on the scorer's event loop:
    # digesting each opening afresh took time quadratic in the turns (8 s for 600
    # turns of 500 characters).
    import time

    turns = [{"role": "user", "content": f"word {n} " * 60} for n in range(600)]
    dataset = OrganicReplayDataset(10)
    started = time.perf_counter()
    dataset.offer({"messages": turns})
    assert time.perf_counter() - started < 2.0


# -- cold start (issue 24) ---------------------------------------------------------------


def test_no_replay_until_min_samples_distinct_samples_are_stored() -> None:
    dataset = OrganicReplayDataset(
        1000, transform=_tagged, fallback=Counting("f"), cooldown=0, seed=5
    )
    assert dataset.min_samples == 50
    for _ in range(80):  # the same request, over and over: one distinct sample
        dataset.offer("the same question")
    for n in range(48):
        dataset.offer(f"question {n}")
    assert all(dataset.sample().startswith("f ") for _ in range(20))
    dataset.offer("question 48")  # the fiftieth distinct one
    assert not dataset.sample().startswith("f ")


def test_a_reservoir_smaller_than_min_samples_still_replays_once_full() -> None:
    # OrganicReplayDataset(20) with the default min_samples of 50 could never hold
    # enough samples: every probe came from the fallback, without a word.
    dataset = OrganicReplayDataset(20, transform=_tagged, fallback=Counting("f"), cooldown=0)
    assert dataset.min_samples == 20
    for n in range(19):
        dataset.offer(f"question {n}")
    assert dataset.sample().startswith("f ")
    dataset.offer("question 19")
    assert not dataset.sample().startswith("f ")


def test_a_sample_that_just_arrived_is_not_replayed_within_the_cooldown() -> None:
    dataset = _filled([f"old {n}" for n in range(20)], transform=_tagged, cooldown=4, seed=6)
    for round_ in range(30):
        dataset.offer(f"new {round_}")
        bases = [_base(dataset.sample()) for _ in range(4)]
        assert f"new {round_}" not in bases
    # ... and is replayed after it.
    later = {_base(dataset.sample()) for _ in range(400)}
    assert "new 0" in later


def test_peek_waits_as_replay_does() -> None:
    # A splice's other half and a generated probe's brief come from peek(): a request
    # that just arrived must not reach a miner through them either.
    dataset = OrganicReplayDataset(100, min_samples=3, cooldown=2, seed=8)
    dataset.offer("old a")
    dataset.offer("old b")
    assert dataset.peek() is None  # fewer than min_samples distinct samples
    dataset.offer("old c")
    dataset.offer("old d")
    dataset.offer("old e")
    assert {dataset.peek() for _ in range(80)} == {"old a", "old b", "old c"}
    for n in range(20):
        dataset.offer(f"new {n}")
        assert all(not dataset.peek().startswith(f"new {n}") for _ in range(20))


def test_the_scorer_default_waits_before_replaying_the_first_organic_sample() -> None:
    dataset = OrganicReplayDataset(transform=_tagged, fallback=Counting("f"), seed=7)
    dataset.offer("the very first request")
    assert [dataset.sample() for _ in range(10)] == [f"f {n}" for n in range(1, 11)]


# -- redaction on load (issue 24) --------------------------------------------------------------


def test_load_applies_redact(tmp_path: Path) -> None:
    _filled([{"prompt": "write to alice@example.org"}, {"prompt": "drop me"}]).save(
        tmp_path / "r.json"
    )

    def redact(sample: dict[str, str]) -> dict[str, str] | None:
        if "drop me" in sample["prompt"]:
            return None
        return {"prompt": sample["prompt"].replace("alice@example.org", "carol@mail.net")}

    dataset = OrganicReplayDataset(10, redact=redact)
    assert dataset.load(tmp_path / "r.json") == 1
    assert dataset.stored() == [{"prompt": "write to carol@mail.net"}]
