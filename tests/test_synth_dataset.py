"""Ready-made synthetic datasets: sampling, weighting, reproducibility and errors."""

from __future__ import annotations

import json
import math
import socket
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from organic_scoring.errors import DatasetUnavailable
from organic_scoring.synth_dataset import (
    JsonlDataset,
    MixtureDataset,
    SequenceDataset,
    SynthDatasetBase,
    SynthDatasetConversation,
    SynthDatasetEntry,
    default_dataset,
)

# Upper 0.1% points of the chi-square distribution.
CHI2_P001 = {2: 13.816, 9: 27.877}


def chi_square(counts: Counter[Any], expected: dict[Any, float], draws: int) -> float:
    return sum((counts[k] - p * draws) ** 2 / (p * draws) for k, p in expected.items())


def write_lines(path: Path, *lines: str) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def entry_line(*messages: str, **extra: Any) -> str:
    return json.dumps({"roles": ["user"] * len(messages), "messages": list(messages), **extra})


# SequenceDataset


def test_sequence_samples_uniformly() -> None:
    dataset = SequenceDataset(range(10), seed=2024)
    draws = 20_000
    counts = Counter(dataset.sample() for _ in range(draws))
    expected = {k: 0.1 for k in range(10)}
    assert chi_square(counts, expected, draws) < CHI2_P001[9]


def test_sequence_seed_is_reproducible() -> None:
    def draws(seed: int) -> list[int]:
        dataset = SequenceDataset(range(100), seed=seed)
        return [dataset.sample() for _ in range(50)]

    assert draws(1) == draws(1)
    assert draws(1) != draws(2)


def test_sequence_keeps_its_own_copy() -> None:
    source = ["a"]
    dataset = SequenceDataset(source, seed=0)
    source.append("b")
    assert dataset.entries == ("a",)
    assert len(dataset) == 1
    assert dataset.sample() == "a"
    assert isinstance(dataset, SynthDatasetBase)
    assert "1 entries" in repr(dataset)


@pytest.mark.parametrize("bad", [[], (), iter(()), "abc", b"abc"])
def test_sequence_rejects_empty_or_string(bad: Any) -> None:
    with pytest.raises(ValueError, match="entries"):
        SequenceDataset(bad)


# JsonlDataset


def test_jsonl_loads_entries_and_skips_blank_lines(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "data.jsonl",
        entry_line("first", task="qa"),
        "",
        "   ",
        entry_line("second"),
    )
    dataset = JsonlDataset(path, seed=0)
    assert len(dataset) == 2
    assert dataset.path == path
    first, second = dataset.entries
    assert first.messages == ["first"]
    assert first.model_extra == {"task": "qa"}
    assert second.messages == ["second"]
    assert {dataset.sample().messages[0] for _ in range(50)} == {"first", "second"}


def test_jsonl_accepts_str_path_and_unicode(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "u.jsonl", json.dumps({"roles": ["user"], "messages": ["héllo ✓"]})
    )
    assert JsonlDataset(str(path)).sample().messages == ["héllo ✓"]


def test_jsonl_sample_is_a_copy(tmp_path: Path) -> None:
    dataset = JsonlDataset(write_lines(tmp_path / "d.jsonl", entry_line("q")), seed=0)
    got = dataset.sample()
    assert isinstance(got, SynthDatasetEntry)
    got.messages.append("a miner's answer")
    assert dataset.sample().messages == ["q"]


def test_jsonl_invalid_json_names_file_and_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", entry_line("ok"), "", '{"roles": [')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 3: invalid JSON") as info:
        JsonlDataset(path)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"messages": ["hi"]}', "roles: Field required"),
        ('{"roles": "user", "messages": ["hi"]}', "roles"),
        ('{"roles": ["user"], "messages": [1]}', "messages.0"),
        ('["user", "hi"]', "valid dictionary"),
    ],
)
def test_jsonl_invalid_entry_names_file_line_and_field(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = write_lines(tmp_path / "entries.jsonl", entry_line("ok"), entry_line("ok"), line)
    with pytest.raises(ValueError, match=r"entries\.jsonl, line 3: not a valid") as info:
        JsonlDataset(path)
    assert problem in str(info.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_jsonl_empty_file_is_an_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.jsonl: no entries"):
        JsonlDataset(path)


def test_jsonl_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        JsonlDataset(tmp_path / "nope.jsonl")


# MixtureDataset


def test_mixture_draws_by_weight() -> None:
    parts = [SequenceDataset([name]) for name in "abc"]
    mixture = MixtureDataset(parts, weights=[1, 2, 7], seed=99)
    draws = 20_000
    counts = Counter(mixture.sample() for _ in range(draws))
    expected = {"a": 0.1, "b": 0.2, "c": 0.7}
    assert chi_square(counts, expected, draws) < CHI2_P001[2]
    assert mixture.weights == pytest.approx((0.1, 0.2, 0.7))


def test_mixture_defaults_to_equal_weights() -> None:
    mixture = MixtureDataset([SequenceDataset(["a"]), SequenceDataset(["b"])], seed=5)
    draws = 10_000
    counts = Counter(mixture.sample() for _ in range(draws))
    assert mixture.weights == (0.5, 0.5)
    # |a - b| beyond 4 standard deviations would be a broken coin.
    assert abs(counts["a"] - counts["b"]) < 4 * math.sqrt(draws)


def test_mixture_never_draws_a_zero_weight() -> None:
    parts = [SequenceDataset([name]) for name in "abc"]
    for weights in ([0, 1, 1], [1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]):
        mixture = MixtureDataset(parts, weights=weights, seed=1)
        drawn = {mixture.sample() for _ in range(2_000)}
        assert drawn == {name for name, w in zip("abc", weights, strict=True) if w}


def test_mixture_seed_is_reproducible() -> None:
    def draws(seed: int) -> list[str]:
        parts = [SequenceDataset([name]) for name in "abcd"]
        mixture = MixtureDataset(parts, weights=[4, 3, 2, 1], seed=seed)
        return [mixture.sample() for _ in range(100)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)


def test_mixture_accepts_numpy_weights_and_nesting() -> None:
    inner = MixtureDataset([SequenceDataset(["a"])], weights=np.array([2.0]))
    outer = MixtureDataset([inner, SequenceDataset(["b"])], weights=[np.int64(1), np.float64(0)])
    assert outer.sample() == "a"
    assert "2 datasets" in repr(outer)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ([1.0], "one entry per dataset"),
        ([1.0, 2.0, 3.0], "one entry per dataset"),
        ([1.0, -0.5], r"weights\[1\] must be finite and >= 0"),
        ([math.nan, 1.0], r"weights\[0\] must be finite"),
        ([math.inf, 1.0], r"weights\[0\] must be finite"),
        ([0, 0.0], "must not all be zero"),
        ([True, 1], r"weights\[0\] must be a number"),
        (["1", 1], r"weights\[0\] must be a number"),
        ("12", "not a string"),
    ],
)
def test_mixture_rejects_bad_weights(weights: Any, message: str) -> None:
    parts = [SequenceDataset(["a"]), SequenceDataset(["b"])]
    with pytest.raises(ValueError, match=message):
        MixtureDataset(parts, weights=weights)


def test_mixture_rejects_bad_datasets() -> None:
    with pytest.raises(ValueError, match="datasets must hold at least one"):
        MixtureDataset([])
    with pytest.raises(ValueError, match=r"datasets\[1\] has no sample\(\)"):
        MixtureDataset([SequenceDataset(["a"]), object()])  # type: ignore[list-item]


# default_dataset


def test_default_dataset_loads_and_validates() -> None:
    dataset = default_dataset(seed=0)
    assert isinstance(dataset, JsonlDataset)
    assert len(dataset) >= 30
    seen = set()
    for entry in dataset.entries:
        assert len(entry.roles) == len(entry.messages) >= 1
        assert set(entry.roles) <= {"user", "assistant"}
        assert entry.roles[-1] == "user", "a synthetic query ends on the user's turn"
        assert all(message.strip() for message in entry.messages)
        assert entry.source == "default"
        assert not entry.organic
        seen.add(tuple(entry.messages))
    assert len(seen) == len(dataset), "entries are distinct"
    assert any(len(entry.roles) > 1 for entry in dataset.entries), "some are multi-turn"


def test_default_dataset_seed_is_reproducible() -> None:
    first, second = default_dataset(seed=11), default_dataset(seed=11)
    assert [first.sample() for _ in range(20)] == [second.sample() for _ in range(20)]


# HuggingFaceDataset (the hf extra)


@pytest.fixture
def hf_datasets(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The ``datasets`` module, with every outgoing connection refused."""
    module = pytest.importorskip("datasets")

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("HuggingFaceDataset tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    return module


def test_hf_without_the_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from organic_scoring.synth_dataset import HuggingFaceDataset

    monkeypatch.setitem(sys.modules, "datasets", None)  # makes `import datasets` fail
    with pytest.raises(ImportError, match=r"organic-scoring\[hf\]"):
        HuggingFaceDataset(object())


def test_hf_parallel_columns(hf_datasets: Any) -> None:
    from organic_scoring.synth_dataset import HuggingFaceDataset

    rows = [
        {"speakers": ["user"], "texts": [f"question {i}"], "topic": f"t{i}", "junk": i}
        for i in range(5)
    ]
    table = hf_datasets.Dataset.from_list(rows)
    dataset = HuggingFaceDataset(
        table, roles_field="speakers", messages_field="texts", extra_fields=["topic"], seed=4
    )
    assert len(dataset) == 5
    entry = dataset.entry(2)
    assert entry.roles == ["user"]
    assert entry.messages == ["question 2"]
    assert entry.model_extra == {"topic": "t2"}
    assert entry.source == "huggingface"
    assert {dataset.sample().messages[0] for _ in range(200)} == {f"question {i}" for i in range(5)}


def test_hf_chat_format(hf_datasets: Any) -> None:
    from organic_scoring.synth_dataset import HuggingFaceDataset

    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    table = hf_datasets.Dataset.from_list([{"conversation": turns}])
    dataset = HuggingFaceDataset(table, roles_field=None, messages_field="conversation")
    entry = dataset.sample()
    assert entry.roles == ["user", "assistant"]
    assert entry.messages == ["hi", "hello"]


def test_hf_seed_is_reproducible(hf_datasets: Any) -> None:
    from organic_scoring.synth_dataset import HuggingFaceDataset

    table = hf_datasets.Dataset.from_list(
        [{"roles": ["user"], "messages": [str(i)]} for i in range(50)]
    )

    def draws(seed: int) -> list[str]:
        dataset = HuggingFaceDataset(table, seed=seed)
        return [dataset.sample().messages[0] for _ in range(30)]

    assert draws(8) == draws(8)
    assert draws(8) != draws(9)


def test_hf_errors(hf_datasets: Any) -> None:
    from organic_scoring.synth_dataset import HuggingFaceDataset

    table = hf_datasets.Dataset.from_list([{"roles": ["user"], "messages": ["hi"]}])
    with pytest.raises(ValueError, match=r"roles_field='who' is not a column.*'messages'"):
        HuggingFaceDataset(table, roles_field="who")
    with pytest.raises(ValueError, match=r"messages_field='text' is not a column"):
        HuggingFaceDataset(table, messages_field="text")
    with pytest.raises(ValueError, match=r"extra_fields\[0\]='x' is not a column"):
        HuggingFaceDataset(table, extra_fields=["x"])
    with pytest.raises(ValueError, match=r"pass one split.*dataset\['train'\]"):
        HuggingFaceDataset(hf_datasets.DatasetDict({"train": table}))
    with pytest.raises(ValueError, match=r"map-style datasets\.Dataset"):
        HuggingFaceDataset([{"roles": ["user"], "messages": ["hi"]}])
    with pytest.raises(ValueError, match="dataset has no rows"):
        HuggingFaceDataset(table.select([]))


def test_hf_malformed_row_names_its_index(hf_datasets: Any) -> None:
    from organic_scoring.synth_dataset import HuggingFaceDataset

    table = hf_datasets.Dataset.from_list(
        [
            {"roles": ["user"], "messages": ["fine"]},
            {"roles": ["user", "assistant"], "messages": ["only one"]},
        ]
    )
    dataset = HuggingFaceDataset(table)
    assert dataset.entry(0).messages == ["fine"]
    with pytest.raises(ValueError, match=r"row 1 of the dataset.*2 roles"):
        dataset.entry(1)


# SynthDatasetEntry reads like the original package's dict samples


def test_entry_has_mapping_access_and_stays_a_model() -> None:
    entry = SynthDatasetEntry(roles=["user"], messages=["hi"], task="qa")
    assert entry["messages"] == ["hi"]
    assert entry["task"] == "qa"
    assert entry.get("organic", True) is False
    assert entry.get("uids") is None
    assert entry.get("uids", []) == []
    assert "source" in entry
    assert "task" in entry
    assert "uids" not in entry
    assert 3 not in entry
    assert list(entry.keys()) == ["roles", "messages", "organic", "source", "task"]
    assert entry.values() == [["user"], ["hi"], False, None, "qa"]
    assert dict(entry) == {**entry} == dict(entry.items()) == entry.model_dump()
    with pytest.raises(KeyError, match="uids"):
        entry["uids"]
    with pytest.raises(KeyError):
        entry["model_dump"]  # methods are not keys
    entry["reference"] = "hello"
    entry["organic"] = True
    assert entry.reference == "hello"
    assert entry.organic is True
    assert entry.model_dump()["reference"] == "hello"
    assert SynthDatasetEntry.model_validate(entry.model_dump()) == entry


# SynthDatasetConversation: the original's conversation dataset, from data you have


def lmsys_row(*turns: tuple[str, str]) -> dict[str, Any]:
    return {"conversation": [{"role": role, "content": text} for role, text in turns]}


CONVERSATION = lmsys_row(
    ("user", "first question"),
    ("assistant", "first answer"),
    ("user", "second question"),
    ("assistant", "second answer"),
)


def test_conversation_without_data_constructs_and_says_how_to_give_it_some() -> None:
    dataset = SynthDatasetConversation()
    assert isinstance(dataset.exception, DatasetUnavailable)
    assert not dataset.success
    assert dataset.dataset is None
    message = str(dataset.exception)
    assert "never downloads" in message
    assert "datasets.Dataset" in message
    assert ".jsonl" in message
    with pytest.raises(DatasetUnavailable) as raised:
        dataset.sample()
    assert raised.value is dataset.exception


def test_conversation_samples_prefixes_that_end_on_a_user_turn() -> None:
    dataset = SynthDatasetConversation([CONVERSATION], typo_rate=0, seed=5)
    assert dataset.success
    assert dataset.exception is None
    seen = set()
    for _ in range(200):
        sample = dataset.sample()
        assert isinstance(sample, SynthDatasetEntry)
        assert sample["roles"][-1] == "user"
        assert sample["organic"] is False
        assert sample["source"] == "lmsys/lmsys-chat-1m"  # the original's name
        seen.add(tuple(sample["messages"]))
    assert seen == {
        ("first question",),
        ("first question", "first answer", "second question"),
    }


def test_conversation_puts_typos_in_user_turns_only() -> None:
    long = "a fairly long question with plenty of characters to put typos in " * 3
    dataset = SynthDatasetConversation(
        [lmsys_row(("user", long), ("assistant", long), ("user", long))], seed=1, typo_rate=0.05
    )
    changed = 0
    for _ in range(50):
        sample = dataset.sample()
        if len(sample.messages) == 3:
            assert sample.messages[1] == long
        changed += sample.messages[0] != long
    assert changed > 0
    assert SynthDatasetConversation([CONVERSATION], seed=2).sample() == (
        SynthDatasetConversation([CONVERSATION], seed=2).sample()
    )


def test_conversation_reads_a_local_jsonl_file(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "chats.jsonl", json.dumps(CONVERSATION), "", json.dumps(CONVERSATION)
    )
    dataset = SynthDatasetConversation(path, source="my-chats", typo_rate=0)
    assert len(dataset) == 2
    assert dataset.sample().source == "my-chats"
    assert repr(dataset) == "SynthDatasetConversation(2 rows)"


def test_conversation_refuses_malformed_data_at_construction(tmp_path: Path) -> None:
    bad_line = write_lines(tmp_path / "bad.jsonl", json.dumps(CONVERSATION), '{"text": "hi"}')
    with pytest.raises(ValueError, match=r"bad\.jsonl, line 2 is not an lmsys-chat row"):
        SynthDatasetConversation(bad_line)
    bad_turn = write_lines(
        tmp_path / "turn.jsonl", json.dumps({"conversation": [{"role": "user"}]})
    )
    with pytest.raises(ValueError, match=r"line 1 .*turn 0 needs a str 'role' and a str 'content'"):
        SynthDatasetConversation(bad_turn)
    with pytest.raises(ValueError, match="no rows"):
        SynthDatasetConversation(write_lines(tmp_path / "empty.jsonl", ""))
    with pytest.raises(FileNotFoundError):
        SynthDatasetConversation(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="data has no rows"):
        SynthDatasetConversation([])
    with pytest.raises(ValueError, match=r"pass one split .*data\['train'\]"):
        SynthDatasetConversation({"train": [CONVERSATION]})
    with pytest.raises(ValueError, match=r"data must be a datasets\.Dataset"):
        SynthDatasetConversation(42)
    with pytest.raises(ValueError, match="typo_rate"):
        SynthDatasetConversation([CONVERSATION], typo_rate=1.5)


def test_conversation_row_without_a_user_turn_is_named_when_drawn() -> None:
    dataset = SynthDatasetConversation([CONVERSATION, lmsys_row(("assistant", "hello"))], seed=0)
    errors = []
    for _ in range(100):
        try:
            dataset.sample()
        except ValueError as exc:
            errors.append(str(exc))
    assert errors
    assert set(errors) == {"row 1 of the conversation data has no user turn"}


def test_conversation_over_a_loaded_hf_dataset(hf_datasets: Any, tmp_path: Path) -> None:
    table = hf_datasets.Dataset.from_list([CONVERSATION] * 3)
    dataset = SynthDatasetConversation(table, typo_rate=0)
    assert dataset.dataset is table
    assert dataset.sample()["messages"][0] == "first question"
    with pytest.raises(ValueError, match="no 'conversation' column"):
        SynthDatasetConversation(hf_datasets.Dataset.from_list([{"text": "hi"}]))
    with pytest.raises(ValueError, match=r"pass one split"):
        SynthDatasetConversation(hf_datasets.DatasetDict({"train": table}))
    # A local Parquet file, the format lmsys-chat is published in, reads the same.
    table.to_parquet(str(tmp_path / "chats.parquet"))
    from_file = SynthDatasetConversation(tmp_path / "chats.parquet", typo_rate=0)
    assert len(from_file) == 3
    assert from_file.sample().messages[0] == "first question"


# -- GeneratedDataset: probes from the validator's own model (issue 24) -----------------------


def _organic(n: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "user", "content": f"Explain recursion with a Python example, case {n}"},
            {"role": "assistant", "content": "A function that calls itself on a smaller input."},
            {"role": "user", "content": "Show the factorial function, please"},
        ],
        "temperature": 0.4,
        "model": "chat-large",
    }


class StandIn:
    """A stand-in generator: writes a new request from a brief, and records the briefs."""

    def __init__(self) -> None:
        self.briefs: list[dict[str, Any]] = []

    def __call__(self, brief: dict[str, Any]) -> Any:
        self.briefs.append(brief)
        template = brief["template"] or {"prompt": ""}
        n = len(self.briefs)

        def fill(value: Any) -> Any:
            if isinstance(value, dict):
                return {
                    k: fill(v) if k != "content" else f"new text {n} on {' '.join(brief['topics'])}"
                    for k, v in value.items()
                }
            if isinstance(value, list):
                return [fill(v) for v in value]
            return value if value != "" else f"new prompt {n}"

        return fill(template)


def test_a_brief_describes_a_stored_sample_without_its_text() -> None:
    from organic_scoring.synth_dataset import GeneratedDataset, OrganicReplayDataset

    reservoir = OrganicReplayDataset(10, seed=1, min_samples=1, cooldown=0)
    reservoir.offer(_organic(1))
    brief = GeneratedDataset(StandIn(), reservoir=reservoir, seed=2).brief()
    assert brief["turns"] == 3
    assert brief["words"] == 5
    assert brief["script"] == "LATIN"
    assert set(brief["topics"]) <= {
        "explain",
        "recursion",
        "python",
        "example",
        "function",
        "calls",
        "itself",
        "smaller",
        "input",
        "factorial",
        "please",
        "case",
        "show",
    }
    assert len(brief["topics"]) == 4
    assert brief["template"] == {
        "messages": [
            {"role": "user", "content": ""},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": ""},
        ],
        "temperature": 0.4,
        "model": "chat-large",
    }


def test_generated_probes_are_new_and_shaped_like_organic_traffic() -> None:
    from organic_scoring.synth_dataset import GeneratedDataset, OrganicReplayDataset

    reservoir = OrganicReplayDataset(10, seed=1, min_samples=1, cooldown=0)
    for n in range(3):
        reservoir.offer(_organic(n))
    generator = StandIn()
    dataset = GeneratedDataset(generator, reservoir=reservoir, seed=3)
    probe = dataset.sample()
    assert [m["role"] for m in probe["messages"]] == ["user", "assistant", "user"]
    assert probe["temperature"] == 0.4
    assert all(m["content"].startswith("new text 1") for m in probe["messages"])


def test_a_generated_repeat_or_failure_falls_back() -> None:
    from organic_scoring.synth_dataset import GeneratedDataset, OrganicReplayDataset

    reservoir = OrganicReplayDataset(10, seed=1, min_samples=1, cooldown=0)
    reservoir.offer(_organic(1))
    copying = GeneratedDataset(
        lambda brief: _organic(1), reservoir=reservoir, fallback=SequenceDataset(["fallback"])
    )
    assert copying.sample() == "fallback"  # the model gave back a request that went out

    def broken(brief: dict[str, Any]) -> Any:
        raise RuntimeError("model down")

    failing = GeneratedDataset(broken, fallback=SequenceDataset(["fallback"]))
    assert failing.sample() == "fallback"
    assert GeneratedDataset(lambda brief: None).sample() is None
    with pytest.raises(ValueError, match="generate must be callable"):
        GeneratedDataset("model")  # type: ignore[arg-type]


def test_an_async_generator_is_awaited_by_asample() -> None:
    import asyncio

    from organic_scoring.synth_dataset import GeneratedDataset

    async def generate(brief: dict[str, Any]) -> dict[str, str]:
        await asyncio.sleep(0)
        return {"prompt": "written just now"}

    dataset = GeneratedDataset(generate)
    assert asyncio.run(dataset.asample()) == {"prompt": "written just now"}
    assert dataset.sample() == {"prompt": "written just now"}  # outside a loop
    plain = GeneratedDataset(lambda brief: {"prompt": "from a thread"})
    assert asyncio.run(plain.asample()) == {"prompt": "from a thread"}


def test_generated_probes_may_keep_the_system_prompt_every_request_shares() -> None:
    # A probe [system, new question] carried a history (the system prompt) that had
    # gone out, so every generated probe of the commonest chat shape was dropped.
    from organic_scoring.synth_dataset import GeneratedDataset, OrganicReplayDataset

    system = "You are a helpful assistant for the Bittensor network."

    def chat(question: str) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": question},
            ]
        }

    reservoir = OrganicReplayDataset(10, seed=1, min_samples=1, cooldown=0)
    for n in range(5):
        reservoir.offer(chat(f"how do I stake on subnet {n}"))
    written = iter(range(100))
    dataset = GeneratedDataset(
        lambda brief: chat(f"a new question number {next(written)}"),
        reservoir=reservoir,
        fallback=SequenceDataset(["fallback"]),
    )
    assert all(dataset.sample() != "fallback" for _ in range(5))


def test_a_brief_template_keeps_long_metadata() -> None:
    # Strings of 24 characters or more count as text, so the template emptied a long
    # model name, an id and a timestamp: metadata it says it keeps.
    from organic_scoring.synth_dataset import GeneratedDataset, OrganicReplayDataset

    metadata = {
        "model": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        "request_id": "3f2b8c1e-9a4d-4e6f-b1c2-7d8e9f0a1b2c",
        "created": "2026-12-07T12:25:07.123456+00:00",
    }
    reservoir = OrganicReplayDataset(10, min_samples=1, cooldown=0)
    reservoir.offer(
        {
            "messages": [{"role": "user", "content": "a_single_long_word_prompt_of_many_letters"}],
            "note": "what the user wrote in a note",
            **metadata,
        }
    )
    template = GeneratedDataset(lambda brief: None, reservoir=reservoir).brief()["template"]
    assert template == {"messages": [{"role": "user", "content": ""}], "note": "", **metadata}


def test_a_brief_of_a_chinese_prompt_does_not_copy_it() -> None:
    # Written without spaces, the whole prompt was one "word of five letters or
    # more": the topic was the prompt itself, and, shorter than 24 characters with no
    # space, it was no "text", so the template kept it as it was.
    from organic_scoring.synth_dataset import GeneratedDataset, OrganicReplayDataset

    prompt = "请问如何在子网上注册矿工并质押"
    reservoir = OrganicReplayDataset(10, min_samples=1, cooldown=0)
    reservoir.offer(SynthDatasetEntry(roles=["user"], messages=[prompt]))
    brief = GeneratedDataset(lambda brief: None, reservoir=reservoir, seed=1).brief()
    assert brief["script"] == "CJK"
    assert brief["template"].messages == [""]
    assert len(brief["topics"]) == 4
    assert all(len(topic) == 2 and topic in prompt for topic in brief["topics"])
    assert brief["words"] == 8
