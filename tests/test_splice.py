"""splice_words: a perturbation of text that keeps to the word pairs of its inputs."""

from __future__ import annotations

import itertools
import random

from organic_scoring.synth_dataset import splice_words


def _pairs(words: list[str]) -> set[tuple[str, str]]:
    return set(itertools.pairwise(words))


def test_every_word_pair_of_a_splice_comes_from_an_input() -> None:
    rng = random.Random(1)
    a = "how do I reverse a list in Python without a loop"
    b = "what is the fastest way to sort a list of tuples by the second item"
    results = {splice_words(a, b, rng) for _ in range(50)}
    assert None not in results
    for result in results:
        assert result is not None
        assert result not in (a, b)
        assert _pairs(result.split()) <= _pairs(a.split()) | _pairs(b.split())


def test_a_longer_shared_run_is_preferred() -> None:
    a = "tell me a story about a dragon and a knight"
    b = "write me a story about the sea"
    rng = random.Random(2)
    for _ in range(20):
        result = splice_words(a, b, rng)
        assert result is not None
        # "me a story about" is shared: the join is made inside that run, so the
        # result's word triples also come from an input.
        assert "about the sea" in result or "a dragon" in result
        triples = set(zip(*(result.split()[k:] for k in range(3)), strict=False))
        allowed = set(zip(*(a.split()[k:] for k in range(3)), strict=False)) | set(
            zip(*(b.split()[k:] for k in range(3)), strict=False)
        )
        assert triples <= allowed


def test_nothing_to_splice_gives_none() -> None:
    rng = random.Random(3)
    assert splice_words("alpha beta", "gamma delta", rng) is None
    assert splice_words("same text", "same text", rng) is None
    assert splice_words("", "anything", rng) is None


def test_seeded_splices_repeat() -> None:
    a, b = "the cat sat on the mat today", "the dog sat on the rug at noon"

    def run(seed: int) -> list[str | None]:
        rng = random.Random(seed)
        return [splice_words(a, b, rng) for _ in range(10)]

    assert run(5) == run(5)


def test_words_match_without_case_or_punctuation() -> None:
    rng = random.Random(4)
    spliced = splice_words("How do I sort a List?", "a list, sorted in reverse", rng)
    assert spliced is not None
    assert spliced.startswith("How do I sort a ")


def test_the_layout_of_each_side_is_kept() -> None:
    text = "Fix this:\n\n    def f(x):\n        return  x + 1"
    other = "Why?\n    return x  * 2\n\tplease help"
    # "return x" is the longest shared run: the join is made at its second word.
    assert splice_words(text, other, random.Random(5)) == (
        "Fix this:\n\n    def f(x):\n        return  x  * 2\n\tplease help"
    )


def test_a_whole_sample_is_spliced_turn_by_turn_in_its_shape() -> None:
    sample = {
        "messages": [
            {"role": "user", "content": "How do I sort a list in Python?"},
            {"role": "assistant", "content": "Use the sorted function on the list."},
            {"role": "user", "content": "And how do I sort it in reverse?"},
        ],
        "temperature": 0.7,
        "model": "chat-large",
    }
    other = {
        "messages": [
            {"role": "user", "content": "How can I reverse a list quickly?"},
            {"role": "assistant", "content": "Call the reversed function on the list."},
            {"role": "user", "content": "And in reverse order for a tuple?"},
        ],
        "temperature": 0.2,
    }
    spliced = splice_words(sample, other, random.Random(6))
    assert spliced is not None
    assert spliced["temperature"] == 0.7
    assert spliced["model"] == "chat-large"
    assert [m["role"] for m in spliced["messages"]] == ["user", "assistant", "user"]
    changed = [
        new["content"] != old["content"]
        for new, old in zip(spliced["messages"], sample["messages"], strict=True)
    ]
    assert all(changed)
    assert sample["messages"][0]["content"] == "How do I sort a list in Python?"  # a new object


def test_a_sample_with_nothing_to_splice_gives_none() -> None:
    rng = random.Random(7)
    assert splice_words({"prompt": "alpha beta"}, {"prompt": "gamma delta"}, rng) is None
    assert splice_words({"prompt": "alpha beta"}, None, rng) is None
    assert splice_words("alpha beta", {"prompt": "alpha gamma"}, rng) is None


def test_a_repetitive_text_splices_quickly() -> None:
    # The transform runs on the scorer's event loop: a pasted run of one word (a log,
    # a column of zeros) took time cubic in its length (8 s at 1 000 words).
    import time

    text, other = "ha " * 1000 + "end one", "ha " * 1000 + "end two"
    started = time.perf_counter()
    spliced = splice_words(text, other, random.Random(1))
    assert time.perf_counter() - started < 1.0
    assert spliced not in (None, text, other)


def test_a_shared_system_prompt_is_kept_and_lends_nothing() -> None:
    # Every request carries the same system prompt: spliced with a question, it
    # became a system prompt no request has ("You are a do?"), and a question could
    # end in the system prompt. It is kept, and each turn splices with the same turn.
    system = "You are a helpful assistant for the Bittensor network."
    rng = random.Random(3)
    for n in range(50):
        sample = {
            "messages": [
                {"role": "system", "content": system},
                {"role": "user", "content": f"how do I stake on subnet {n} with btcli"},
            ]
        }
        other = {
            "messages": [
                {"role": "system", "content": system},
                {
                    "role": "user",
                    "content": f"where do I register on subnet {n + 1} for the network",
                },
            ]
        }
        spliced = splice_words(sample, other, rng)
        assert spliced is not None
        assert spliced["messages"][0]["content"] == system
        assert "assistant" not in spliced["messages"][1]["content"]
