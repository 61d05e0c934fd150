"""A validator built on the original organic-scoring package changes nothing but its
install line: the original's import paths, top-level names, ``is_overridden`` and a
subclass written for it (``support/original_scorer.py``) run unchanged.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import organic_scoring
from organic_scoring._compat import HAS_AXON
from organic_scoring.errors import DatasetUnavailable
from support.axons import BITTENSOR_WARNINGS, make_wallets, query, serve_scorer
from support.waiting import WAIT, Counter

pytestmark = [pytest.mark.bittensor, pytest.mark.usefixtures("no_leaks"), BITTENSOR_WARNINGS]

# The original package's module paths and what each one gave.
ORIGINAL_PATHS = {
    "organic_scoring.organic_scoring_base": ("OrganicScoringBase", "organic_scoring"),
    "organic_scoring.organic_queue.organic_queue": (
        "OrganicQueue",
        "organic_scoring.organic_queue",
    ),
    "organic_scoring.organic_queue.organic_queue_base": (
        "OrganicQueueBase",
        "organic_scoring.organic_queue",
    ),
    "organic_scoring.synth_dataset.synth_dataset_base": (
        "SynthDatasetBase",
        "organic_scoring.synth_dataset",
    ),
    "organic_scoring.synth_dataset.synth_dataset_conversation": (
        "SynthDatasetConversation",
        "organic_scoring.synth_dataset",
    ),
}


def fresh_import(name: str) -> ModuleType:
    """Import ``name`` anew (dropping it from ``sys.modules``), so it warns again."""
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def forget_top_level_names() -> None:
    """Drop the original's top-level names the package kept after their first use (and
    warning), so the next ``from organic_scoring import ...`` warns again."""
    for name in ("OrganicQueue", "OrganicQueueBase"):
        vars(organic_scoring).pop(name, None)


@pytest.mark.parametrize("path", list(ORIGINAL_PATHS))
def test_original_module_paths_are_aliases_that_point_to_the_new_one(path: str) -> None:
    name, new = ORIGINAL_PATHS[path]
    with pytest.warns(DeprecationWarning, match=f"import from {new} instead") as caught:
        module = fresh_import(path)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    # The warning points at the line that imported, not at importlib or the alias.
    assert [Path(w.filename).name for w in caught] == [Path(__file__).name]


def test_original_top_level_names_still_import() -> None:
    from organic_scoring.organic_queue import OrganicQueue, OrganicQueueBase

    forget_top_level_names()
    with pytest.warns(DeprecationWarning, match=r"organic_scoring\.OrganicQueue is the original"):
        from organic_scoring import OrganicQueue as Old
    with pytest.warns(DeprecationWarning, match=r"import from organic_scoring\.organic_queue"):
        from organic_scoring import OrganicQueueBase as OldBase

    assert (Old, OldBase) == (OrganicQueue, OrganicQueueBase)
    assert "OrganicQueue" not in organic_scoring.__all__
    # In a fresh interpreter (this one may have imported them already): one warning
    # per name, even with every warning shown, pointing at the importing line.
    code = (
        "import warnings\n"
        "warnings.simplefilter('always')\n"
        "from organic_scoring import OrganicQueue, OrganicQueueBase\n"
        "from organic_scoring import OrganicQueue\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=WAIT
    ).stderr
    warned = [line for line in shown.splitlines() if "DeprecationWarning" in line]
    assert len(warned) == 2, shown
    assert all(line.startswith("<string>:3:") for line in warned), shown
    assert "organic_scoring.OrganicQueue is the original" in shown
    assert "import from organic_scoring.organic_queue instead" in shown
    with pytest.raises(AttributeError, match="no attribute 'Nothing'"):
        _ = organic_scoring.Nothing  # type: ignore[attr-defined]


def test_is_overridden_tells_hooks_a_subclass_replaced() -> None:
    with pytest.warns(DeprecationWarning, match="organic_scoring.utils"):
        utils = fresh_import("organic_scoring.utils")
    original = load_original()

    class Mid(original.PromptingScorer):
        async def _verify_fn(self, synapse: Any) -> bool:
            return True

    class Leaf(Mid):
        pass

    scorer = Leaf(None, None, 5, "seconds", Validator())
    assert utils.is_overridden(scorer._blacklist_fn)  # replaced by PromptingScorer
    assert utils.is_overridden(scorer._verify_fn)  # replaced two classes up
    assert not utils.is_overridden(scorer._generate_reference.__func__)  # not bound
    plain = original.PromptingScorer(None, None, 5, "seconds", Validator())
    assert not utils.is_overridden(plain._verify_fn)


# -- the subclass written for the original package -------------------------------------------


def load_original() -> ModuleType:
    """``support.original_scorer``, imported as its author would, with its warnings."""
    forget_top_level_names()
    with pytest.warns(DeprecationWarning, match="original organic-scoring package"):
        return fresh_import("support.original_scorer")


class Validator:
    """The parts of the prompting subnet's validator its scorer touches."""

    def __init__(self, whitelist_hotkey: str = "") -> None:
        self.organic_whitelist_hotkey = whitelist_hotkey
        self.organic_uids = [1, 2, 3]
        self.synthetic_uids = [0, 3]
        self.block = 100
        self.scores = [0.0] * 8
        self.events: list[dict[str, Any]] = []
        self.logged = Counter()
        self._lock = threading.Lock()

    def miner_answer(self, uid: int, prompt: str) -> str:
        # Even uids answer as the reference does, odd ones shout.
        return prompt.lower() if uid % 2 == 0 else prompt.upper()

    def reference(self, roles: list[str], messages: list[str]) -> str:
        assert len(roles) == len(messages)
        return str(messages[-1]).lower()

    def update_scores(self, rewards: list[float], uids: list[int]) -> None:
        with self._lock:
            for uid, reward in zip(uids, rewards, strict=True):
                self.scores[uid] = 0.5 * reward + 0.5 * self.scores[uid]

    def log_event(self, logs: dict[str, Any]) -> None:
        self.events.append(logs)
        self.logged.bump()


def lmsys_file(directory: Path) -> Path:
    """A local file of conversations in the lmsys-chat format."""
    rows = [
        {
            "conversation": [
                {"role": "user", "content": f"Question number {i}"},
                {"role": "assistant", "content": f"Answer number {i}"},
                {"role": "user", "content": f"Follow-up number {i}"},
            ]
        }
        for i in range(4)
    ]
    path = directory / "lmsys.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_a_subclass_written_for_the_original_runs_unchanged(
    tmp_path: Path, library_log: list[str]
) -> None:
    original = load_original()

    # The prompting validator's start-up: the dataset with no data says why, in its
    # `exception` attribute, and the validator goes on without synthetic data.
    no_data = original.SynthDatasetConversation()
    assert isinstance(no_data.exception, DatasetUnavailable)
    assert "never downloads" in str(no_data.exception)
    with pytest.raises(DatasetUnavailable):
        no_data.sample()
    # With the conversations the validator has, it samples the original's shape.
    dataset = original.SynthDatasetConversation(str(lmsys_file(tmp_path)), seed=3)
    assert dataset.exception is None

    wallets = make_wallets(tmp_path) if HAS_AXON else None
    validator = Validator(wallets.client.hotkey.ss58_address if wallets else "")
    # Positional, as the original's signature allowed, with the frequency (2 steps)
    # below the subnet's floor (the default 5): one warning, then it runs at 5.
    build = lambda axon: original.PromptingScorer(axon, dataset, 2, "steps", validator)  # noqa: E731

    def drive(scoring: Any, send: Any) -> None:
        assert [m for m in library_log if "trigger_frequency" in m] == [
            "trigger_frequency (2) is below trigger_frequency_min (5); "
            "the loop runs at the floor, every 5 steps"
        ]
        for text in ("Hello There", "What Is A Subnet"):
            reply = send(original.PromptSynapse(roles=["user"], messages=[text]))
            assert reply.completion == text.upper()  # miner 1's answer, through the handler
        assert scoring.organic_queue.size == 2
        scoring.start()
        for _ in range(20):  # the validator's own loop, one step at a time
            scoring.increment_step()
        validator.logged.wait_for(4, WAIT)

    if wallets is not None:
        with serve_scorer(wallets.server, build) as (axon, scoring):
            refused = query(axon, wallets.stranger, original.PromptSynapse(messages=["hi"]))
            assert int(refused.dendrite.status_code) == 403  # its Tuple blacklist

            def send(synapse: Any) -> Any:
                reply = query(axon, wallets.client, synapse)
                assert int(reply.dendrite.status_code) == 200, reply.dendrite.status_message
                return reply

            drive(scoring, send)
            scoring.stop()
    else:
        scoring = build(None)
        try:
            drive(scoring, lambda synapse: asyncio.run(scoring.receive_organic(synapse)))
        finally:
            scoring.stop()

    stats = scoring.stats
    assert stats.failed_iterations == 0, scoring.recent_failures
    events = validator.events
    assert len(events) == 4  # 20 steps at the floor of 5
    assert [e["is_organic_sample"] for e in events] == [True, True, False, False]
    # Organic samples are the dicts the handler queued; synthetic ones index the same way.
    assert [e["source"] for e in events] == [
        None,
        None,
        "lmsys/lmsys-chat-1m",
        "lmsys/lmsys-chat-1m",
    ]
    assert events[0]["keys"] == ["completions", "messages", "organic", "roles", "uids"]
    assert events[2]["keys"] == ["messages", "organic", "roles", "source"]
    assert all(e["turns"] in (1, 3) for e in events[2:])
    # The reference-matching miners gained most, on organic and synthetic samples alike.
    assert validator.scores[2] > validator.scores[1] > 0
    assert validator.scores[0] > validator.scores[3] > 0
